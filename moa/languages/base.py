"""The language plugin interface.

A plugin is a small object with a name, the file extensions it owns, a detector, and
optional capability hooks (mutation runner, evaluator, default sources). A hook that is
not built is `None` and reported as absent by `moa languages`; there are no placeholders.

Everything moa knows about a language lives in its plugin, declared as data or as a small
optional interface (never discovered by reflection): which lines of its test runners name a
failing test, what a function definition looks like, the idioms a fix should respect, which
folders hold dependencies or build output; and, as small optional interfaces an evaluator
may implement (checked with isinstance, like Kueue's optional job interfaces): `Versioned`
(its toolchain's versions), `LintBaseline` (a state's own lint findings) and `NameChecker`
(which names a change uses that nothing defines).

Third parties add a language by exposing a `LanguagePlugin` in the `moa.languages`
entry-point group; moa itself registers rust, python, typescript and go that way.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from moa.api.records import EvalOutcome, MutationRecord, SourceRef


@dataclass(frozen=True)
class CuratedSource:
    """A source a plugin recommends, with an honest note on whether it is usable here."""

    ref: SourceRef
    ships_tests: bool
    note: str = ""


@dataclass(frozen=True)
class FunctionSpan:
    """A function (or method) of a source file, as the language's parser sees it.

    `name` is qualified the way the plugin's mutation records name functions (`Class.method`,
    `Type::method`); lines are 1-based and inclusive, decorators/attributes included."""

    name: str
    start: int
    end: int


def enclosing(spans: Sequence[FunctionSpan], line: int) -> str | None:
    """The name of the innermost function whose span holds `line`."""
    inside = [s for s in spans if s.start <= line <= s.end]
    return max(inside, key=lambda s: (s.start, -s.end)).name if inside else None


@dataclass(frozen=True)
class RoutingMarkers:
    """What sends a prompt to this language's adapter in `moa serve` (moa/serving/detect.py),
    beyond file extensions and `markers`: a new plugin is routed with no server change.

    fences: info strings of fenced code blocks (```rust);
    manifests: project file names (Cargo.toml);
    patterns: regexes (multiline) of idioms the `markers` miss and of this toolchain's
    stack traces and error messages, with weights.
    """

    fences: tuple[str, ...] = ()
    manifests: tuple[str, ...] = ()
    patterns: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class MutationRunner(Protocol):
    """Runs the language's mutation-testing tool on an unpacked source tree.

    Optional, for per-test flaky handling in `moa datagen mutate` (see moa/datagen/verify.py):
    `failing_tests(output) -> list[str]` (test ids failed in a baseline output) and an
    `exclude_tests: Sequence[str]` keyword on `baseline` and `run`. Without them a source whose
    baseline is flaky is skipped, with that reason.
    """

    tool: str

    def ensure_tool(self) -> None:
        """Install the mutation tool into ~/.cache/moa if it is missing (idempotent)."""

    def prepare(self, repo: Path) -> None:
        """Fetch dependencies and make the repo buildable/testable.

        The fetch stage runs it with the network; mutate runs it again offline (the plugin's
        `offline_cache` switches on), where it must find everything already downloaded."""

    def baseline(self, repo: Path, timeout_s: float) -> tuple[bool, str]:
        """Run the test suite unmodified: (green, output excerpt)."""

    def run(
        self, repo: Path, source: SourceRef, max_mutations: int | None, timeout_s: float
    ) -> list[MutationRecord]:
        """Run the tool (sandboxed, no network) and normalise every mutant into a record."""


@runtime_checkable
class Evaluator(Protocol):
    """Judges a repository state: builds, tests, lint -> outcome and reward."""

    def evaluate(self, repo: Path, timeout_s: float) -> EvalOutcome: ...


@dataclass(frozen=True)
class OfflineCache:
    """Where the language's toolchain keeps what it downloads, and the switches forbidding more.

    `env(cache)` points the toolchain's download caches into moa's cache (on the artifact volume
    in a cluster, so the fetch pod and the mutate pods share them); `offline` makes it use those
    caches only. The fetch stage runs with `env` and the network; mutate with `env` + `offline`
    and none, so a sandboxed run never needs the network.
    """

    env: Callable[[Path], dict[str, str]]
    offline: Mapping[str, str]
    # Variables naming a CA bundle for this toolchain; fetch sets them to SSL_CERT_FILE when that
    # is set (a cluster's caBundle, a TLS-inspecting proxy), as OpenSSL alone does not reach them.
    ca_env: tuple[str, ...] = ()


@runtime_checkable
class Versioned(Protocol):
    """Optional on an `Evaluator`: the versions of every tool its verdict depends on (part of
    the evaluation cache key, so an upgraded toolchain re-evaluates)."""

    def toolchain(self) -> str: ...


@runtime_checkable
class LintBaseline(Protocol):
    """Optional on an `Evaluator`: a state's lint findings on their own, so an edit is judged
    only on the findings it adds."""

    def lint_state(self, repo: Path, timeout_s: float = 600.0) -> list[str]: ...


@runtime_checkable
class NameChecker(Protocol):
    """Optional on an `Evaluator`: the names used but defined nowhere (the hallucinated-API
    metric compares them before and after a change)."""

    def undefined_names(self, repo: Path, files: Sequence[str], timeout_s: float) -> set[tuple[str, str]]:
        """(file, message) for each use of an undefined name in `files` (paths relative to `repo`)."""


# (source, dest, archives) -> what was verified (checksums, URLs), kept in the tree's record.
Fetcher = Callable[[SourceRef, Path, Path], dict[str, str]]


@dataclass(frozen=True)
class Idiom:
    """A line a fix in this language should not add, and what it breaks."""

    pattern: re.Pattern[str]
    breaks: str


def lazy(target: str) -> Callable[[], Any]:
    """A hook factory for `module:Class`: the module is imported on first use, so importing a
    plugin (every `moa` command does) stays cheap."""
    module, attr = target.split(":")

    def make() -> Any:
        return getattr(importlib.import_module(module), attr)()

    make.__qualname__ = make.__name__ = target
    return make


@dataclass
class LanguagePlugin:
    name: str
    extensions: tuple[str, ...]
    # Tokens whose presence suggests this language; weights are relative.
    markers: dict[str, float] = field(default_factory=dict)
    # Hooks: absent until built. Factories so that importing a plugin stays cheap.
    mutation_runner: Callable[[], MutationRunner] | None = None
    evaluator: Callable[[], Evaluator] | None = None
    default_sources: Sequence[CuratedSource] = ()
    offline_cache: OfflineCache | None = None

    # Source registries this plugin fetches from, by prefix (the `REGISTRY:` of `REGISTRY:NAME@VERSION`): a
    # fetcher fills `dest` with the unpacked tree (archives kept under `archives`) and returns
    # what it verified, for the tree's record. Built-in prefixes cannot be overridden.
    fetchers: Mapping[str, Fetcher] = field(default_factory=dict)
    # The functions of a source file (its text), from a real parser: how a mutation record's
    # diff is checked to touch only the function it names.
    functions: Callable[[str, str], list[FunctionSpan]] | None = None  # (path, text) -> spans
    routing: RoutingMarkers | None = None
    # Knowledge hooks; empty when not known (what needs them then does without, and says so).
    # Lines of the test runners' output that name a failing test (group 1: the name).
    failing_test_patterns: tuple[re.Pattern[str], ...] = ()
    # Starts of test-output lines that say why a test failed (regular expressions), beyond the
    # generic `assert`, `Error`, `expected`...: what a teacher quotes from a red run.
    failure_clues: tuple[str, ...] = ()
    # Where a function `{name}` is defined: a regular expression with that placeholder.
    definition_pattern: str = ""
    # Soft criteria for ranking fixes: lines a fix should not add.
    idioms: tuple[Idiom, ...] = ()
    # Folders `prepare` fills with dependencies: linked into workspaces, never copied or shown.
    dependency_dirs: tuple[str, ...] = ()
    # Files that identify those dependencies (a lock file the installer writes), relative paths.
    dependency_locks: tuple[str, ...] = ()
    # Build output and tool caches that a run recreates: never copied, hashed or shown.
    build_dirs: tuple[str, ...] = ()
    # Of those, build output an evaluation slot keeps warm (the build tool checks it itself).
    incremental_dirs: tuple[str, ...] = ()

    def definition(self, function: str) -> str:
        """A regular expression for the definition of `function` (a qualified name's last part);
        without a known pattern, any whole-word use of the name."""
        name = re.escape(function.split(".")[-1].split("::")[-1])
        return self.definition_pattern.replace("{name}", name) if self.definition_pattern else rf"\b{name}\b"

    # A few short, idiomatic code snippets: part of the tiny test model's tokenizer and
    # pretraining text (`moa dev tiny-model`), so that it has seen the language's syntax.
    code_samples: Sequence[str] = ()

    def detect(self, text: str, filename: str | None = None) -> float:
        """A score in [0, 1]: how much `text` (or its file name) looks like this language."""
        if filename and Path(filename).suffix in self.extensions:
            return 1.0
        if not self.markers or not text:
            return 0.0
        hit = sum(w for token, w in self.markers.items() if re.search(token, text, re.MULTILINE))
        return min(1.0, hit / max(1.0, sum(self.markers.values()) / 3))

    def capabilities(self) -> dict[str, bool]:
        return {
            "detect": bool(self.markers or self.extensions),
            "mutate": self.mutation_runner is not None,
            "evaluate": self.evaluator is not None,
            "sources": bool(self.default_sources),
            "route": self.routing is not None,
        }
