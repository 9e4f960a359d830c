"""The moa-auto language detector: the cascade, its reasons, and plugin-supplied markers."""

from __future__ import annotations

import pytest

from moa.languages import registry
from moa.languages.base import LanguagePlugin, RoutingMarkers
from moa.serving.detect import _file_tables, detect


def test_metadata_wins_over_everything() -> None:
    got = detect("```go\npackage main\n```", {"language": "rust"})
    assert (got.language, got.reason, got.confidence) == ("rust", "metadata", 1.0)


def test_unknown_metadata_language_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="cobol"):
        detect("x", {"language": "cobol"})


@pytest.mark.parametrize(
    ("prompt", "language"),
    [
        ("```rust\nlet x = 1;\n```", "rust"),
        ("my repo has go.mod, main.go and handlers.go", "go"),
        ("see tsconfig.json and src/index.ts", "typescript"),
        ("pyproject.toml\nsrc/app/__init__.py", "python"),
    ],
)
def test_files_step_uses_fences_manifests_and_paths(prompt: str, language: str) -> None:
    got = detect(prompt)
    assert (got.language, got.reason) == (language, "files")
    assert got.detail


def test_keyword_step_and_stack_traces() -> None:
    got = detect("thread 'main' panicked at src/x.rs:3:5")
    assert got.language == "rust"
    got = detect("def f(self):\n    return None\n")
    assert (got.language, got.reason) == ("python", "keywords")


def test_no_signal_and_ambiguity_are_reported_not_guessed() -> None:
    assert detect("hello, how are you?").reason == "no-signal"
    both = detect("```rust\nx\n```\n```go\ny\n```")
    assert both.language is None and both.reason == "ambiguous"


def test_a_new_plugin_is_routed_with_no_server_change(monkeypatch: pytest.MonkeyPatch) -> None:
    zig = LanguagePlugin(
        name="zig",
        extensions=(".zig",),
        routing=RoutingMarkers(fences=("zig",), manifests=("build.zig.zon",), patterns={r"\bcomptime\b": 3}),
    )
    installed = {**registry.plugins(), "zig": zig}  # as if its distribution's entry point were installed
    monkeypatch.setattr("moa.serving.detect.plugins", lambda: installed)
    _file_tables.cache_clear()
    try:
        assert detect("build.zig.zon and src/main.zig").language == "zig"
        assert detect("const n = comptime blk: { break :blk 3; };").language == "zig"
    finally:
        _file_tables.cache_clear()
