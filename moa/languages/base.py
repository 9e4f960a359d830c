"""The language plugin interface.

A plugin is a small object with a name, the file extensions it owns, a detector, and
optional capability hooks (mutation runner, evaluator, default sources). A hook that is
not built is `None` and reported as absent by `moa languages`; there are no placeholders.

Third parties add a language by exposing a `LanguagePlugin` in the `moa.languages`
entry-point group; moa itself registers rust, python, typescript and go that way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
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
        """Fetch dependencies and make the repo buildable/testable (network allowed here)."""

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
        }
