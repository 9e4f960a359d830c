"""The mutate stage: dedup, caps, the verification rule, flaky tests, and resume after a kill.

The toolchain tests run the real thing (mutmut 3 + pytest in bwrap) on a tiny local `path:` package
whose suite has one test that fails on every second run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from python_mutations import local_package
from report_plots import assert_plots

from moa.api.records import MutationRecord
from moa.datagen.dedup import diff_hash
from moa.datagen.mutate import Caps, MutateConfig, dedup, scratch_dir
from moa.datagen.verify import find_flaky, verify

CALC = """def add(a, b):
    return a + b


def clamp(x, lo, hi):
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


def scale(x):
    return x * 3 + 1


def parity(n):
    return "even" if n % 2 == 0 else "odd"


def greet(name):
    return "hello " + name
"""
TESTS = """from calc import add, clamp, parity, scale


def test_add():
    assert add(2, 3) == 5


def test_clamp():
    assert clamp(5, 0, 10) == 5
    assert clamp(-1, 0, 10) == 0
    assert clamp(11, 0, 10) == 10


def test_scale_and_parity():
    assert scale(2) == 7
    assert parity(4) == "even" and parity(3) == "odd"
"""
# Fails on every second run of the suite: the flaky test. It is also the only test of greet().
FLAKY = """from pathlib import Path

from calc import greet


def test_flaky_greet():
    runs = Path(__file__).with_name(".runs")
    n = int(runs.read_text()) if runs.exists() else 0
    runs.write_text(str(n + 1))
    assert greet("bob") == "hello bob"
    assert n % 2 == 0
"""
FLAKY_ID = "tests/test_flaky.py::test_flaky_greet"


def tiny_package(root: Path) -> Path:
    files = {"calc/__init__.py": CALC, "tests/test_calc.py": TESTS, "tests/test_flaky.py": FLAKY}
    return local_package(root, "calc", files)


def record(diff: str, function: str = "f", operator: str = "arithmetic:+->-") -> MutationRecord:
    return MutationRecord(
        language="python", source="path:/x", version="", file="calc/__init__.py",
        function=function, operator=operator, diff=diff, status="caught",
    )  # fmt: skip


def mutation(old: str, new: str) -> str:
    """A fixed -> buggy file diff of calc/__init__.py replacing the one line `old` by `new`."""
    import difflib

    fixed = CALC.splitlines(keepends=True)
    buggy = [new + "\n" if line.rstrip("\n") == old else line for line in fixed]
    assert buggy != fixed, old
    return "".join(difflib.unified_diff(fixed, buggy, "a/calc/__init__.py", "b/calc/__init__.py"))


# ---------------------------------------------------------------------------- pure logic


def test_dedup_ignores_line_numbers_hunk_headers_and_whitespace() -> None:
    a = "--- a/m.py\n+++ b/m.py\n@@ -1,3 +1,3 @@\n def f(x):\n-    return x + 1\n+    return x - 1\n"
    b = "--- m.py\n+++ m.py\n@@ -40,3 +40,3 @@\n def f(x):\n-    return x  +  1\n+    return x - 1   \n"
    other_file = a.replace("m.py", "n.py")
    other_change = a.replace("x - 1", "x * 1")
    assert diff_hash(a) == diff_hash(b)
    assert len({diff_hash(a), diff_hash(other_file), diff_hash(other_change)}) == 3
    kept, dropped = dedup([record(a), record(b), record(other_file)])
    assert [r.diff for r in kept] == [a, other_file] and dropped == 1
    assert all(r.diff_hash for r in kept)


def test_caps_per_function_operator_and_source(tmp_path: Path) -> None:
    caps = Caps(MutateConfig("python", tmp_path, max_mutations=4, max_per_function=2, max_per_operator=2))
    seen = []
    wanted = [
        ("f", "string"),
        ("g", "string"),
        ("h", "string"),
        ("f", "number:1->2"),
        ("f", "none"),
        ("i", "none"),
        ("j", "bool"),
    ]
    for fn, op in wanted:
        rec = record("", function=fn, operator=op)
        why = caps.blocked(rec)
        seen.append(why)
        if why is None:
            caps.take(rec)
    assert seen == [None, None, "cap_operator", None, "cap_function", None, "cap_source"]


# ---------------------------------------------------------------------------- real toolchain


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    from moa.languages.python.mutation import MutmutRunner

    repo = tiny_package(tmp_path_factory.mktemp("verify") / "calc")
    runner = MutmutRunner()
    runner.prepare(repo)
    return runner, repo


@pytest.mark.slow
def test_flaky_test_found_and_verification_rule(prepared: tuple[object, Path]) -> None:
    runner, repo = prepared
    base = find_flaky(runner, repo, timeout_s=120)  # type: ignore[arg-type]
    assert base.green and base.flaky == [FLAKY_ID], base

    caught = verify(runner, repo, record(mutation("    return a + b", "    return a - b")), base.flaky, 120)  # type: ignore[arg-type]
    assert caught.kept and caught.failing == ["tests/test_calc.py::test_add"], caught
    assert "assert -1 == 5" in caught.excerpt

    # `<` -> `<=` at the bound returns the same value: the suite cannot notice, so it is dropped.
    equivalent = verify(runner, repo, record(mutation("    if x < lo:", "    if x <= lo:")), base.flaky, 120)  # type: ignore[arg-type]
    assert not equivalent.kept and equivalent.reason == "tests_pass"

    # Only the flaky test covers greet(): a mutant there is never credited to it.
    flaky_only = verify(
        runner,
        repo,
        record(mutation('    return "hello " + name', '    return "XXhello XX" + name')),
        base.flaky,
        120,
    )  # type: ignore[arg-type]
    assert not flaky_only.kept and flaky_only.reason == "tests_pass"
    assert (repo / "calc" / "__init__.py").read_text() == CALC  # every check reverted its patch


def _mutate(source: Path, out: Path) -> subprocess.Popen[str]:
    cmd = [str(Path(sys.executable).with_name("moa")), "datagen", "mutate", "--language", "python", "--source", f"path:{source}", "--output", str(out), "--timeout", "120", "--min-green-tests", "1", "--all-operators"]  # fmt: skip
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


@pytest.mark.slow
def test_mutate_cli_kill_resume_and_skip(tmp_path: Path) -> None:
    source = tiny_package(tmp_path / "calc")
    out = tmp_path / "out"
    from moa.api.records import SourceRef

    ref = SourceRef.parse(f"path:{source}")
    verdicts = scratch_dir(MutateConfig("python", out), ref) / "verify.cache"

    proc = _mutate(source, out)
    deadline = time.monotonic() + 240
    while not (verdicts.is_file() and verdicts.read_text().count("\n") >= 1):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "no verification verdict within 240 s"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-verification: outputs must not exist yet
    proc.wait()
    assert not (out / ref.slug / "stats.json").exists() and not (out / "metrics.json").exists()

    proc = _mutate(source, out)
    log = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, log
    assert "mutants from the cached tool run" in log and "verdicts reused from a killed run" in log
    stats = json.loads((out / ref.slug / "stats.json").read_text())
    assert stats["status"] == "done", stats
    assert stats["flaky_tests"] == [FLAKY_ID]
    records = [
        MutationRecord.model_validate_json(line) for line in (out / ref.slug / "mutations.jsonl").open()
    ]
    assert records and all(r.verified and r.status == "caught" and r.failing_tests for r in records)
    # greet() is tested by the flaky test alone, which is excluded: none of its mutants is kept.
    assert "greet" not in {r.function for r in records}
    assert len({r.diff_hash for r in records}) == len(records)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "succeeded" and metrics["metrics"]["kept"] == len(records)
    assert not verdicts.parent.exists()  # scratch removed once the source is done
    assert_plots(out / "reports", ["yield_by_source", "yield_by_class"])

    finished = (out / "metrics.json").read_bytes()
    proc = _mutate(source, out)
    log = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0 and "done already" in log, log
    assert (out / "metrics.json").read_bytes() == finished  # a no-op rewrites nothing

    # An uninterrupted run counts what the killed-and-resumed one did; only wall times differ.
    fresh = tmp_path / "fresh"
    proc = _mutate(source, fresh)
    log = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, log
    timing = {"seconds", "mutants_per_minute"}

    def counts(path: Path) -> dict:
        row = json.loads(path.read_text())
        return {k: v for k, v in row.get("metrics", row).items() if k not in timing}

    assert counts(fresh / ref.slug / "stats.json") == counts(out / ref.slug / "stats.json")
    assert counts(fresh / "metrics.json") == counts(out / "metrics.json")


def test_stage_config_maps_to_a_run(tmp_path: Path) -> None:
    from moa.api.stages import StageConfig
    from moa.api.training import AdapterTrainingSpec
    from moa.datagen.mutate import from_stage_config

    spec = AdapterTrainingSpec.model_validate(
        {
            "language": "python",
            "data": {
                "sources": ["pypi:inflection@0.5.1", "pypi:six@1.16.0"],
                "limits": {"maxMutationsPerSource": 7, "timeouts": {"testSeconds": 42}},
            },
        }
    )
    whole = StageConfig(stage="mutate", root=str(tmp_path), name="t", spec=spec)
    cfg, texts = from_stage_config(whole, [])
    assert texts == ["pypi:inflection@0.5.1", "pypi:six@1.16.0"]
    assert cfg.output == tmp_path / "data" / "python" / "mutations" and cfg.metrics_path is None
    assert (cfg.max_mutations, cfg.test_timeout_s) == (7, 42.0)

    shard = whole.model_copy(update={"shard": "pypi:six@1.16.0"})
    cfg, texts = from_stage_config(shard, [])
    assert texts == ["pypi:six@1.16.0"]
    assert cfg.metrics_path == tmp_path / "data" / "python" / "mutations" / "six-1.16.0" / "metrics.json"


def test_failed_sources_are_reported_in_one_line_and_in_metrics(tmp_path: Path) -> None:
    """Two bad sources in parallel (--jobs 2): each is a failed row, the stage exits 1 with one line."""
    moa = str(Path(sys.executable).with_name("moa"))
    out = tmp_path / "out"
    cmd = [moa, "datagen", "mutate", "-l", "python", "-o", str(out), "--jobs", "2"]
    cmd += ["--source", f"path:{tmp_path / 'missing-a'}", "--source", f"path:{tmp_path / 'missing-b'}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("moa: error:")]
    assert len(errors) == 1 and "missing-a" in errors[0] and "missing-b" in errors[0], proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "failed" and metrics["metrics"]["sources_failed"] == 2


def test_a_finished_mutate_rerun_is_a_noop_that_leaves_metrics_byte_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stage harness: a completed output makes a re-run a no-op (no source is touched, not
    even one that no longer exists), metrics.json stays byte-identical, and the summary still
    goes to the termination log, as a pod re-run needs."""
    from moa.api.stages import StageSummary

    out = tmp_path / "out"
    StageSummary(stage="mutate", status="succeeded", metrics={"kept": 3.0, "seconds": 12.5}).write(
        out / "metrics.json"
    )
    finished = (out / "metrics.json").read_bytes()
    stamp = (out / "metrics.json").stat().st_mtime_ns
    termination = tmp_path / "termination-log"
    termination.touch()
    env = {**os.environ, "MOA_TERMINATION_LOG": str(termination)}
    moa = str(Path(sys.executable).with_name("moa"))
    cmd = [moa, "datagen", "mutate", "-l", "python", "-o", str(out), "--source", f"path:{tmp_path / 'gone'}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "done already" in proc.stderr
    assert (out / "metrics.json").read_bytes() == finished
    assert (out / "metrics.json").stat().st_mtime_ns == stamp
    assert json.loads(termination.read_text())["metrics"]["kept"] == 3.0


def test_recover_reverts_an_applied_diff_and_drops_a_stale_journal(tmp_path: Path) -> None:
    """A kill can land after the journal is written but before the diff is applied (or after
    the revert, before the journal goes): recovery must tell the two apart."""
    import difflib

    from moa.datagen.verify import apply_diff, recover

    fixed, buggy = "def add(a, b):\n    return a + b\n", "def add(a, b):\n    return a - b\n"
    (tmp_path / "calc.py").write_text(fixed)
    diff = "".join(
        difflib.unified_diff(fixed.splitlines(True), buggy.splitlines(True), "a/calc.py", "b/calc.py")
    )
    journal = tmp_path / "applied.diff"
    journal.write_text(diff)
    recover(tmp_path, journal)  # written, never applied: nothing to revert
    assert (tmp_path / "calc.py").read_text() == fixed and not journal.exists()
    journal.write_text(diff)
    assert apply_diff(tmp_path, diff)[0]
    recover(tmp_path, journal)  # applied: reverted
    assert (tmp_path / "calc.py").read_text() == fixed and not journal.exists()


def test_a_long_failure_keeps_what_failed_and_the_tools_last_words() -> None:
    from moa.datagen.mutate import brief

    reason = (
        "ToolError: stryker wrote no report (exit 1):\n" + "INFO progress\n" * 100 + "ERROR EROFS: read-only"
    )
    short = brief(reason)
    assert short.startswith("ToolError: stryker wrote no report") and short.endswith("ERROR EROFS: read-only")
    assert len(short) < 600 and brief("exit 2: no tests") == "exit 2: no tests"
