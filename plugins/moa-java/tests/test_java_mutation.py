"""`moa datagen mutate -l java` on a real Maven Central artifact (commons-cli), with a small cap:
PIT picks the mutants its JUnit 5 plugin sees killed, each is mapped onto a one-token source
edit, and moa's verification re-runs the suite on the source diff (red, naming a JUnit test
that is not flaky), reverts it (green again, byte-identical)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from moa.api.records import SUITE_FAILURE, MutationRecord
from moa.languages.tools import apply_unified

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]
SOURCE = "maven:commons-cli:commons-cli@1.9.0"
CAP = ("--max-mutations", "4")


def test_pit_mutants_become_verified_source_mutations(tmp_path: Path) -> None:
    out = tmp_path / "mutations"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "moa.cli",
            "datagen",
            "mutate",
            "-l",
            "java",
            "--source",
            SOURCE,
            *CAP,
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=2300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (stats_file,) = out.rglob("stats.json")
    stats = json.loads(stats_file.read_text())
    assert stats["status"] == "done" and stats["tool"].startswith("pitest@"), stats
    records = [
        MutationRecord.model_validate_json(line)
        for line in (stats_file.parent / "mutations.jsonl").read_text().splitlines()
    ]
    assert len(records) == stats["kept"] >= 2, stats
    # Drops are counted by reason, never silently: every PIT mutant not mapped has one.
    assert all(n > 0 for n in stats["dropped"].values())
    tree = Path(
        subprocess.run(
            [sys.executable, "-c", f"from moa.languages import sources; print(sources.fetch({SOURCE!r}))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    for rec in records:
        assert rec.verified and rec.status == "caught" and rec.language == "java"
        assert rec.operator.split(":")[0] in {
            "CONDITIONALS_BOUNDARY",
            "NEGATE_CONDITIONALS",
            "MATH",
            "INCREMENTS",
        }
        assert rec.operator_class in {"boundary", "comparison", "arithmetic"}
        # A JUnit test named as `Class#method`, from the launcher's own report.
        assert rec.failing_tests and all(t.name != SUITE_FAILURE and "#" in t.name for t in rec.failing_tests)
        # The diff changes exactly the one line PIT named, in the pristine source.
        fixed = (tree / rec.file).read_text(encoding="ISO-8859-1")
        buggy = apply_unified(fixed, rec.diff)
        changed = [
            i + 1
            for i, (a, b) in enumerate(zip(fixed.splitlines(), buggy.splitlines(), strict=True))
            if a != b
        ]
        assert changed == [rec.line], rec.diff
