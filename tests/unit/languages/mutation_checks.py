"""Checks shared by the Rust, TypeScript and Go mutation-runner tests.

A record is only useful if its diff really turns the fixed tree into the buggy one, so every
test applies the diffs with `git apply` (the same tool the mutate stage's verification uses)
instead of trusting the runner's own bookkeeping.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

from moa.api.records import MutationRecord


def working_copy(tree: Path, dest: Path) -> Path:
    """A private, writable copy of a cached source tree."""
    shutil.copytree(tree, dest, symlinks=True)
    return dest


def check_records(records: list[MutationRecord], repo: Path, language: str, tool_prefix: str) -> Counter[str]:
    """Every record is well-formed and its diff applies cleanly fixed -> buggy; returns status counts."""
    assert records, "the runner produced no records"
    for r in records:
        assert r.language == language and r.tool.startswith(tool_prefix)
        assert (repo / r.file).is_file(), r.file
        assert r.operator and r.line and r.line > 0
        assert r.diff.startswith(f"--- a/{r.file}\n+++ b/{r.file}\n@@"), r.diff[:200]
        applied = subprocess.run(
            ["git", "apply", "--check", "-"], input=r.diff, text=True, cwd=repo, capture_output=True
        )
        assert applied.returncode == 0, f"{r.file}:{r.line} {r.operator}: {applied.stderr}\n{r.diff}"
        if r.status == "caught":
            assert r.failing_tests and all(t.name for t in r.failing_tests), r
        else:
            assert not r.failing_tests
    return Counter(r.status for r in records)
