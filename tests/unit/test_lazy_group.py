"""Lazy command groups list only installed commands; a missing one is an error, not silence."""

from __future__ import annotations

import click
from click.testing import CliRunner

from moa.lazy_group import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy={
        "languages": "moa.languages.cli:languages",
        "absent": "moa.not_built.cli:absent",
    },
)
def group() -> None:
    """A group for the test."""


@click.group(cls=LazyGroup, lazy={"not-a-command": "moa.languages.registry:plugins"})
def broken() -> None:
    """A group whose one target is not a command."""


def test_only_installed_commands_are_listed() -> None:
    result = CliRunner().invoke(group, ["--help"])
    assert result.exit_code == 0, result.output
    assert "languages" in result.output and "absent" not in result.output


def test_a_missing_command_is_an_error_that_names_its_module() -> None:
    result = CliRunner().invoke(group, ["absent"])
    assert result.exit_code == 2
    assert "moa.not_built.cli is missing" in result.output


def test_a_target_that_is_not_a_command_is_an_error() -> None:
    result = CliRunner().invoke(broken, ["not-a-command"])
    assert result.exit_code == 1
    assert "moa.languages.registry:plugins is not a click command" in result.output
