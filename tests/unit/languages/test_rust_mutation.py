"""The Rust mutation runner (cargo-mutants) on strsim, a real .crate from crates.io.

strsim has no dependencies, so a cold `prepare` builds in seconds; its target folder is then
reused from ~/.cache/moa/cargo-target by every later run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mutation_checks import check_records, working_copy

from moa.api.records import SourceRef
from moa.languages import registry
from moa.languages.rust.mutation import RustMutationRunner, log_failures
from moa.languages.sources import fetch

SOURCE = SourceRef.parse("crates:strsim@0.11.1")
# cargo-mutants 27 mutation genres.
GENRES = {"FnValue", "BinaryOperator", "UnaryOperator", "MatchArm", "MatchArmGuard", "StructField"}
LOG = """\
running 3 tests
test tests::hamming_diff ... ok
test tests::levenshtein_empty ... FAILED
test tests::jaro_same ... FAILED

failures:

---- tests::levenshtein_empty stdout ----
thread 'tests::levenshtein_empty' panicked at src/lib.rs:612:9:
assertion `left == right` failed
  left: 1
 right: 0

---- tests::jaro_same stdout ----
thread 'tests::jaro_same' panicked at src/lib.rs:700:9:
assertion failed: (1.0 - jaro("a", "a")).abs() < 1e-9

failures:
    tests::levenshtein_empty
    tests::jaro_same

test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = working_copy(fetch(SOURCE), tmp_path_factory.mktemp("rust") / "strsim")
    RustMutationRunner().prepare(repo)
    return repo


@pytest.mark.slow
def test_plugin_offers_the_runner_and_sources() -> None:
    plugin = registry.get("rust")
    assert plugin.mutation_runner is not None and plugin.mutation_runner().tool.startswith("cargo-mutants@")
    names = {s.ref.name for s in plugin.default_sources}
    assert {"bstr", "anyhow", "tokio", "rayon"} <= names
    assert any(not s.ships_tests and s.note for s in plugin.default_sources)


@pytest.mark.slow
def test_baseline_green_and_broken(repo: Path, tmp_path: Path) -> None:
    runner = RustMutationRunner()
    green, output = runner.baseline(repo, 300)
    assert green, output
    assert runner.baseline_s is not None
    broken = working_copy(repo, tmp_path / "broken")
    lib = broken / "src" / "lib.rs"
    lib.write_text(lib.read_text().replace("pub fn hamming(", "pub fn hamming_renamed(", 1))
    green, output = runner.baseline(broken, 300)
    assert not green and "hamming" in output


@pytest.mark.slow
def test_run_normalises_real_mutants(repo: Path) -> None:
    runner = RustMutationRunner(jobs=2)
    listed = runner.list_mutants(repo)
    assert len(listed) > 50
    records = runner.run(repo, SOURCE, 10, 900)
    assert len(records) == 10
    counts = check_records(records, repo, "rust", "cargo-mutants@")
    assert counts["caught"] >= 3, counts
    caught = next(r for r in records if r.status == "caught")
    assert caught.function and caught.operator.split(":")[0] in GENRES
    assert "changed by cargo-mutants" not in caught.diff
    assert "build_s" in caught.timings and "test_s" in caught.timings
    assert any("panicked" in t.excerpt for r in records if r.status == "caught" for t in r.failing_tests)


def test_failing_tests_from_a_libtest_log() -> None:
    tests = log_failures(LOG)
    assert [t.name for t in tests] == ["tests::levenshtein_empty", "tests::jaro_same"]
    assert "left: 1" in tests[0].excerpt and "jaro" in tests[1].excerpt
    assert log_failures("error: could not compile")[0].name == "(suite)"
    assert RustMutationRunner().failing_tests(LOG) == [t.name for t in tests]
