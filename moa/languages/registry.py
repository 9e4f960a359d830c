"""Discovery of language plugins through the `moa.languages` entry-point group."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from moa.languages.base import LanguagePlugin

GROUP = "moa.languages"


class UnknownLanguageError(LookupError):
    pass


@cache
def plugins() -> dict[str, LanguagePlugin]:
    """All installed plugins by name. Cached: call `plugins.cache_clear()` after installing one."""
    found: dict[str, LanguagePlugin] = {}
    for ep in entry_points(group=GROUP):
        obj = ep.load()
        if not isinstance(obj, LanguagePlugin):
            raise TypeError(f"entry point {ep.name}={ep.value} is not a moa LanguagePlugin")
        found[obj.name] = obj
    return found


def get(name: str) -> LanguagePlugin:
    try:
        return plugins()[name]
    except KeyError:
        known = ", ".join(sorted(plugins())) or "none"
        raise UnknownLanguageError(
            f"unknown language {name!r} (installed plugins: {known}); add one through the 'moa.languages' entry point"
        ) from None


def detect(text: str, filename: str | None = None) -> tuple[str, float] | None:
    """The best-scoring language for a snippet, or None when nothing scores."""
    scored = [(p.detect(text, filename), p.name) for p in plugins().values()]
    score, name = max(scored, default=(0.0, ""))
    return (name, score) if score > 0 else None
