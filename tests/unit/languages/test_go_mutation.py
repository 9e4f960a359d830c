"""The Go mutation runner (Gremlins) on github.com/google/uuid, a real module zip from the proxy."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from mutation_checks import check_records, working_copy

from moa.api.records import SourceRef
from moa.languages import registry, sandbox
from moa.languages.base import enclosing
from moa.languages.go.functions import functions
from moa.languages.go.mutation import GoMutationRunner, Mutant, apply_mutant, classify, read_events
from moa.languages.sources import fetch

SOURCE = SourceRef.parse("go:github.com/google/uuid@v1.6.0")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = working_copy(fetch(SOURCE), tmp_path_factory.mktemp("go") / "uuid")
    GoMutationRunner().prepare(repo)
    return repo


@pytest.mark.slow
def test_plugin_offers_the_runner_and_sources() -> None:
    plugin = registry.get("go")
    assert plugin.mutation_runner is not None and plugin.mutation_runner().tool.startswith("gremlins@")
    assert any(s.ref == SOURCE and s.ships_tests for s in plugin.default_sources)


@pytest.mark.slow
def test_baseline_green_and_broken(repo: Path, tmp_path: Path) -> None:
    runner = GoMutationRunner()
    green, output = runner.baseline(repo, 300)
    assert green, output
    broken = working_copy(repo, tmp_path / "broken")
    path = broken / "uuid.go"
    path.write_text(path.read_text().replace("return Version(uuid[6] >> 4)", "return Version(uuid[6] >> 5)"))
    green, output = runner.baseline(broken, 300)
    assert not green and "FAIL" in output


@pytest.mark.slow
def test_run_normalises_real_mutants(repo: Path) -> None:
    runner = GoMutationRunner(jobs=2)
    mutants = runner.find_mutants(repo)
    assert len(mutants) > 100 and {m.type for m in mutants} >= {"ARITHMETIC_BASE", "CONDITIONALS_NEGATION"}
    records = runner.run(repo, SOURCE, 12, 600)
    assert len(records) == 12
    counts = check_records(records, repo, "go", "gremlins@")
    assert counts["caught"] >= 3, counts
    caught = next(r for r in records if r.status == "caught")
    assert caught.failing_tests[0].name.startswith("Test") and "FAIL" in caught.failing_tests[0].excerpt
    assert runner.failing_tests(caught.failing_tests[0].excerpt)[0] == caught.failing_tests[0].name
    assert caught.function and "test_s" in caught.timings
    assert (repo / "dce.go").read_text() == (fetch(SOURCE) / "dce.go").read_text(), (
        "run must restore the tree"
    )


def test_apply_mutant_swaps_the_token_gremlins_names() -> None:
    text = "package p\n\nfunc (u T) Less(a, b int) bool {\n\treturn a <= b && a != 0\n}\n"
    buggy, op = apply_mutant(text, Mutant("p.go", 4, 11, "CONDITIONALS_BOUNDARY", True))
    assert op == "CONDITIONALS_BOUNDARY: <= -> <" and "return a < b && a != 0" in buggy
    buggy, op = apply_mutant(text, Mutant("p.go", 4, 16, "INVERT_LOGICAL", True))
    assert op == "INVERT_LOGICAL: && -> ||" and "a <= b || a != 0" in buggy
    assert enclosing(functions("p.go", text), 4) == "T.Less"
    with pytest.raises(Exception, match="no ARITHMETIC_BASE token"):
        apply_mutant(text, Mutant("p.go", 4, 2, "ARITHMETIC_BASE", True))


def test_failing_tests_from_go_test_json(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module example.com/m\n\ngo 1.21\n")
    (tmp_path / "m.go").write_text("package m\n\nfunc Add(a, b int) int { return a - b }\n")
    (tmp_path / "m_test.go").write_text(
        'package m\n\nimport "testing"\n\nfunc TestAdd(t *testing.T) {\n\tif Add(1, 2) != 3 {\n\t\tt.Fatal("bad sum")\n\t}\n}\n\n'
        'func TestTable(t *testing.T) {\n\tt.Run("zero", func(t *testing.T) {\n\t\tif Add(0, 1) != 1 {\n\t\t\tt.Error("zero")\n\t\t}\n\t})\n}\n\n'
        "func TestFine(t *testing.T) {}\n"
    )
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local", "GOPROXY": "off"}
    proc = subprocess.run(
        ["go", "test", "-json", "-count=1", "./..."], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    text, failed = read_events(proc.stdout + proc.stderr)
    assert failed == ["TestAdd", "TestTable/zero", "TestTable"], failed
    assert "--- FAIL: TestAdd" in text and "bad sum" in text and '"Action"' not in text
    assert GoMutationRunner().failing_tests(text) == failed
    status, tests = classify(sandbox.Result(1, text, 1.0), failed)
    assert status == "caught" and [t.name for t in tests] == failed
