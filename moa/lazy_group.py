"""A click group whose sub-commands are imported on first use.

Lives outside `moa.cli` so that component CLIs (datagen, trainer, dev...) can build lazy groups
without importing the top-level command, which the layering contracts forbid.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import click


def module_exists(name: str) -> bool:
    """Whether module `name` is installed, without importing it (its parent packages are)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


class LazyGroup(click.Group):
    """A group whose sub-commands are resolved from `module:attr` strings on first use.

    A command is listed only when its module is installed (a component left out of this
    install, e.g. without its extra, has no command); running one whose module is missing,
    or whose module fails to import, is an error that says so -- never silence.
    """

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        names.update(n for n, target in self.lazy.items() if module_exists(target.split(":")[0]))
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or self._load(cmd_name)

    def _load(self, name: str) -> click.Command | None:
        target = self.lazy.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        if not module_exists(module_name):
            raise click.UsageError(
                f"{name!r} is not part of this install: its module {module_name} is missing "
                "(install the moa extra that provides it)"
            )
        cmd = getattr(importlib.import_module(module_name), attr, None)
        if not isinstance(cmd, click.Command):
            raise click.ClickException(f"{target} is not a click command")
        return cmd
