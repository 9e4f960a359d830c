"""Which images `moa dev images build --only` builds, and in what order."""

from __future__ import annotations

import click
import pytest

from moa.dev.images import catalogue, selection


def test_serving_brings_the_trainer_it_builds_on_first() -> None:
    assert [i.name for i in selection(("moa-serving",))] == ["moa-trainer", "moa-serving"]
    assert [i.name for i in selection(("moa-serving", "moa-operator"))] == [
        "moa-operator",
        "moa-trainer",
        "moa-serving",
    ]


def test_no_selection_is_the_whole_catalogue_and_an_unknown_name_is_refused() -> None:
    assert selection(()) == catalogue()
    with pytest.raises(click.ClickException, match=r"unknown image.*moa-nope"):
        selection(("moa-nope",))


def test_every_image_is_built_after_what_it_needs() -> None:
    order = [i.name for i in catalogue()]
    for image in catalogue():
        assert all(order.index(need) < order.index(image.name) for need in image.needs)
