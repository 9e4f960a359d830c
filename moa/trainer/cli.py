"""`moa train sft|ipo|grpo`, and the top-level `moa eval` / `moa merge` commands.

Each stage module is imported only when its command runs (torch, transformers and TRL are
heavy); a stage whose module is not built yet simply has no command.
"""

from __future__ import annotations

import importlib

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


# `moa eval` and `moa merge` are top-level commands that live here (see moa.cli.COMMANDS);
# resolved on attribute access so importing this module stays light.
_TOP_LEVEL = {"eval_cmd": "moa.trainer.evaluate:eval_cmd", "merge": "moa.trainer.merge:merge_cmd"}


def __getattr__(name: str) -> click.Command | None:
    if name not in _TOP_LEVEL:
        raise AttributeError(name)
    module_name, attr = _TOP_LEVEL[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None  # not built yet: no command
        raise
    return getattr(module, attr, None)
