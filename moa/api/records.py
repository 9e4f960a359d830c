"""Data records shared by datagen, trainer and the languages: the on-disk JSONL schemas.

These are plain data (pydantic models) so every stage reads and writes the same shape and a
malformed line can be reported with its file and line number.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MutationStatus = Literal["caught", "missed", "timeout", "unviable"]

# The registry prefix is open: moa fetches pypi, crates, npm, go, git and path, and a language
# plugin may add its own (its `fetchers` hook); `moa.languages.sources.fetch` refuses an unknown one.
_SOURCE_RE = re.compile(r"^(?P<registry>[a-z][a-z0-9]*):(?P<rest>.+)$")


class SourceRef(BaseModel):
    """A source repository: `REGISTRY:NAME@VERSION`, `git:URL#REV` or `path:DIR`."""

    model_config = ConfigDict(frozen=True)

    registry: str = Field(pattern=r"^[a-z][a-z0-9]*$")
    name: str
    version: str = ""

    @classmethod
    def parse(cls, text: str) -> SourceRef:
        m = _SOURCE_RE.match(text.strip())
        if not m:
            raise ValueError(
                f"invalid source {text!r}: expected REGISTRY:NAME@VERSION (pypi, crates, npm, go or a plugin's registry), git:URL#REV or path:DIR"
            )
        registry, rest = m["registry"], m["rest"]
        if registry == "path":
            return cls(registry="path", name=rest)
        if registry == "git":
            url, _, rev = rest.partition("#")
            return cls(registry="git", name=url, version=rev)
        name, sep, version = rest.rpartition("@")
        if not sep or not name or not version:
            raise ValueError(f"invalid source {text!r}: {registry} sources need NAME@VERSION")
        return cls(registry=registry, name=name, version=version)

    def __str__(self) -> str:
        if self.registry == "path":
            return f"path:{self.name}"
        if self.registry == "git":
            return f"git:{self.name}#{self.version}" if self.version else f"git:{self.name}"
        return f"{self.registry}:{self.name}@{self.version}"

    @property
    def slug(self) -> str:
        """A filesystem-safe folder name (the `{repo}` of data/{lang}/mutations/{repo}/)."""
        base = f"{self.name}-{self.version}" if self.version else self.name
        return re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("_")


# The failing-test name of a mutant that broke the suite as a whole (it no longer builds or loads),
# so no single test can be named. Anything else names the test the toolchain reported.
SUITE_FAILURE = "(suite)"


class FailingTest(BaseModel):
    name: str
    excerpt: str = ""


class MutationRecord(BaseModel):
    """One mutant, normalised across tools. `diff` is a file-level unified diff fixed -> buggy."""

    language: str
    source: str  # str(SourceRef)
    version: str
    file: str
    function: str | None = None
    line: int | None = None
    operator: str
    diff: str
    status: MutationStatus
    failing_tests: list[FailingTest] = Field(default_factory=list)
    verified: bool = False
    tool: str = ""
    timings: dict[str, float] = Field(default_factory=dict)
    diff_hash: str = ""
    # The diff was checked against a parse of the file to touch only `function` (moa/datagen/diffcheck.py).
    function_scoped: bool = False
    # The tool's operator mapped by the language plugin to a bug class (moa.api.training.BugClass).
    operator_class: str = ""

    @field_validator("source")
    @classmethod
    def _source_parses(cls, value: str) -> str:
        SourceRef.parse(value)  # a record whose source cannot be split by package is unusable
        return value


class EvalOutcome(BaseModel):
    """What an evaluator found for one repository state (after a patch)."""

    applied: bool = True
    builds: bool = False
    tests_passed: bool = False
    lint_clean: bool = False
    lint_available: bool = True
    outcome: Literal[
        "invalid_tool_call", "patch_failed", "compile_error", "tests_failed", "lint_warnings", "clean"
    ]
    reward: float
    tests_total: int | None = None
    tests_failed: int | None = None
    output: str = ""
    seconds: float = 0.0
    # Lint findings as "path: rule: message" (no line numbers, so they compare across edits).
    lint_findings: list[str] = Field(default_factory=list)
    cached: bool = False  # served from the evaluation cache, not re-run
    timed_out: bool = False  # a step ran out of the time budget (such outcomes are not cached)
