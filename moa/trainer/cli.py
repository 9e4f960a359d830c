"""`moa train sft|ipo|grpo` (the top-level `moa eval` and `moa merge` are listed in `moa.cli`).

Each stage module is imported only when its command runs (torch, transformers and TRL are
heavy).
"""

from __future__ import annotations

import click

from moa.lazy_group import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy={
        "sft": "moa.trainer.sft:sft_cmd",
        "ipo": "moa.trainer.ipo:ipo_cmd",
        "grpo": "moa.trainer.grpo:grpo_cmd",
    },
)
def train() -> None:
    """Train the language's adapter: SFT, then IPO, then GRPO (each: --config STAGE.yaml)."""
