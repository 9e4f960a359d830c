"""Discovery of language plugins through the `moa.languages` entry-point group.

A language is added by installing a distribution that exposes a `LanguagePlugin` in this
group; moa itself registers rust, python, typescript and go the same way, so a new
language needs no change to moa (the operator validates `spec.language` against this list).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from moa.languages.base import LanguagePlugin

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
