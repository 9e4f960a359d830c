"""The language plugin interface.

A plugin is a small object with a name, the file extensions it owns, a detector, and
optional capability hooks (mutation runner, evaluator, default sources). A hook that is
not built is `None` and reported as absent by `moa languages`; there are no placeholders.

Third parties add a language by exposing a `LanguagePlugin` in the `moa.languages`
entry-point group; moa itself registers rust, python, typescript and go that way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from moa.api.records import EvalOutcome, MutationRecord, SourceRef


@dataclass(frozen=True)
class CuratedSource:
    """A source a plugin recommends, with an honest note on whether it is usable here."""

    ref: SourceRef
    ships_tests: bool
    note: str = ""


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
        }
