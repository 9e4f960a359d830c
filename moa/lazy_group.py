"""A click group whose sub-commands are imported on first use.

Lives outside `moa.cli` so that component CLIs (datagen, trainer, dev...) can build lazy groups
without importing the top-level command, which the layering contracts forbid.
"""

from __future__ import annotations

import importlib
from typing import Any

import click


class LazyGroup(click.Group):
    """A group whose sub-commands are resolved from `module:attr` strings on first use.

    A module that does not exist yet (a component not built) simply has no command:
    only commands that work are listed.
    """

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        names.update(n for n in self.lazy if self._load(n) is not None)
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or self._load(cmd_name)

    def _load(self, name: str) -> click.Command | None:
        target = self.lazy.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                return None  # component not present in this build
            raise
        cmd = getattr(module, attr, None)
        return cmd if isinstance(cmd, click.Command) else None
