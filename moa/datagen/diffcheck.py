"""Whether a mutation record's diff is right, checked against the pristine tree and a parse of it.

Why: a diff that patches the wrong function still "verifies" (the suite fails), so verification
alone cannot catch it; the only defence is to check every diff before it becomes training data.
A record passes when its diff is well-formed for its own file, applies exactly to the pristine
file, changes something, and every line it touches lies inside the function the record names,
as the language plugin's parser sees that file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from moa.api.records import MutationRecord
from moa.languages.base import FunctionSpan
from moa.languages.tools import DiffError, apply_unified, changed_lines

Functions = Callable[[str, str], list[FunctionSpan]]


class DiffChecker:
    """Checks records of one tree; each file is read and parsed once."""

    def __init__(self, repo: Path, functions: Functions | None) -> None:
        self.repo = repo
        self.functions = functions
        self._texts: dict[str, str | None] = {}
        self._spans: dict[str, list[FunctionSpan] | None] = {}

    def problem(self, rec: MutationRecord) -> str | None:
        """None when the diff is right; else why the record is dropped (a metric name)."""
        if not rec.diff.startswith(f"--- a/{rec.file}\n+++ b/{rec.file}\n"):
            return "diff_other_file"
        fixed = self._text(rec.file)
        if fixed is None:
            return "diff_file_missing"
        try:
            if apply_unified(fixed, rec.diff) == fixed:
                return "diff_empty"
            lines = changed_lines(rec.diff)
        except DiffError:
            return "diff_not_applying"
        if self.functions is None:
            return None  # the plugin has no parser: applies, not scope-checked (function_scoped stays false)
        spans = self._parsed(rec.file, fixed)
        if spans is None:
            return "diff_unparsable_file"
        named = [s for s in spans if s.name == rec.function]
        if not named:
            return "diff_function_unknown"
        if not any(all(s.start <= n <= s.end for n in lines) for s in named):
            return "diff_outside_function"
        return None

    def _text(self, path: str) -> str | None:
        if path not in self._texts:
            file = self.repo / path
            self._texts[path] = file.read_text(errors="surrogateescape") if file.is_file() else None
        return self._texts[path]

    def _parsed(self, path: str, text: str) -> list[FunctionSpan] | None:
        if path not in self._spans:
            assert self.functions is not None
            try:
                self._spans[path] = self.functions(path, text)
            except (SyntaxError, ValueError):
                self._spans[path] = None
        return self._spans[path]
