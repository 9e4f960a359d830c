"""`moa dev`: developer tooling (local control plane, tiny model)."""

from __future__ import annotations

import click

from moa.lazy_group import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy={
        "cluster": "moa.dev.cluster:cluster",
        "tiny-model": "moa.dev.tiny_model:tiny_model_cmd",
    },
)
def dev() -> None:
    """Developer tools: a real local control plane, a tiny offline model."""
