"""Discovery of language plugins through the `moa.languages` entry-point group.

A language is added by installing a distribution that exposes a `LanguagePlugin` in this
group; moa itself registers rust, python, typescript and go the same way, so a new
language needs no change to moa (the operator validates `spec.language` against this list).
"""

from __future__ import annotations

import re
from functools import cache
from importlib.metadata import entry_points
from pathlib import PurePosixPath

from moa.languages.base import Fetcher, LanguagePlugin

GROUP = "moa.languages"


class UnknownLanguageError(LookupError):
    pass


class PluginError(RuntimeError):
    """An installed plugin that cannot be used; the message names its entry point."""


# name -> where the plugin came from ("module:attr from distribution"), filled by `plugins()`.
_ORIGINS: dict[str, str] = {}


@cache
def plugins() -> dict[str, LanguagePlugin]:
    """All installed plugins by name. Cached: call `plugins.cache_clear()` after installing one."""
    found: dict[str, LanguagePlugin] = {}
    for ep in entry_points(group=GROUP):
        where = f"{ep.value} from {ep.dist.name if ep.dist else 'an unknown distribution'}"
        try:
            obj = ep.load()
        except Exception as exc:
            raise PluginError(f"language plugin {ep.name} ({where}) failed to import: {exc}") from exc
        if not isinstance(obj, LanguagePlugin):
            raise PluginError(
                f"entry point {ep.name}={ep.value} is not a moa LanguagePlugin but {type(obj).__name__}"
            )
        if obj.name in found and _ORIGINS[obj.name] != where:
            raise PluginError(
                f"two plugins are named {obj.name!r}: {_ORIGINS[obj.name]} and {where}; uninstall one of them"
            )
        found[obj.name] = obj
        _ORIGINS[obj.name] = where
    return dict(sorted(found.items()))


def origin(name: str) -> str:
    """Where an installed plugin comes from, e.g. `moa.languages.rust:plugin from moa`."""
    get(name)
    return _ORIGINS[name]


def get(name: str) -> LanguagePlugin:
    try:
        return plugins()[name]
    except KeyError:
        known = ", ".join(sorted(plugins())) or "none"
        raise UnknownLanguageError(
            f"unknown language {name!r} (installed plugins: {known}); add one through the 'moa.languages' entry point"
        ) from None


def scores(text: str, filename: str | None = None) -> list[tuple[str, float]]:
    """Every plugin's detection score for a snippet, best first (ties by name)."""
    return sorted(
        ((p.name, p.detect(text, filename)) for p in plugins().values()), key=lambda s: (-s[1], s[0])
    )


def detect(text: str, filename: str | None = None) -> tuple[str, float] | None:
    """The best-scoring language for a snippet, or None when nothing scores."""
    ranked = scores(text, filename)
    return ranked[0] if ranked and ranked[0][1] > 0 else None


def for_file(path: str) -> LanguagePlugin | None:
    """The plugin that owns a file, by its extension (None when no plugin does)."""
    suffix = PurePosixPath(path).suffix
    return next((p for p in plugins().values() if suffix in p.extensions), None)


def extensions() -> tuple[str, ...]:
    """Every installed plugin's source file extensions."""
    return tuple(e for p in plugins().values() for e in p.extensions)


def failing_test_patterns() -> tuple[re.Pattern[str], ...]:
    """Every installed plugin's failing-test patterns (for output of an unknown runner)."""
    return tuple(rx for p in plugins().values() for rx in p.failing_test_patterns)


def dependency_dirs() -> frozenset[str]:
    """Folders that hold prepared dependencies, in any installed language."""
    return frozenset(d for p in plugins().values() for d in p.dependency_dirs)


def dependency_locks() -> frozenset[str]:
    """Files that identify prepared dependencies, in any installed language."""
    return frozenset(f for p in plugins().values() for f in p.dependency_locks)


def build_dirs() -> frozenset[str]:
    """Folders of build output and tool caches, in any installed language."""
    return frozenset(d for p in plugins().values() for d in p.build_dirs)


def incremental_dirs() -> frozenset[str]:
    """Build output that evaluation slots keep warm, in any installed language."""
    return frozenset(d for p in plugins().values() for d in p.incremental_dirs)


def fetchers() -> dict[str, Fetcher]:
    """Source registries the installed plugins add, by prefix (the first plugin by name wins)."""
    found: dict[str, Fetcher] = {}
    for p in plugins().values():
        for prefix, fetch in p.fetchers.items():
            found.setdefault(prefix, fetch)
    return found
