"""`moa datagen`: data generation stages (each one a stage per DESIGN.md's stage contract)."""

from __future__ import annotations

import click

from moa.lazy_group import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy={
        "fetch": "moa.datagen.fetch:fetch_cmd",
        "mutate": "moa.datagen.mutate:mutate_cmd",
        "trajectories": "moa.datagen.trajectories:trajectories_cmd",
        "preferences": "moa.datagen.preferences:preferences_cmd",
        "gate": "moa.datagen.gate:gate_cmd",
    },
)
def datagen() -> None:
    """Generate training data: fetch (the only step with network), mutations, trajectories, preferences, and the data gate."""
