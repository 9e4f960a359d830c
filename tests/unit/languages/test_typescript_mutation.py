"""The TypeScript mutation runner (StrykerJS) on ts-dedent, a real npm tarball with its Jest suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mutation_checks import check_records, working_copy

from moa.api.records import SourceRef
from moa.languages import registry
from moa.languages.sources import fetch
from moa.languages.tools import replace_span
from moa.languages.typescript.mutation import TypeScriptMutationRunner, normalise, vitest_config

SOURCE = SourceRef.parse("npm:ts-dedent@2.3.0")
FIXTURE = Path(__file__).parent / "fixtures" / "stryker-ts-dedent.json"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = working_copy(fetch(SOURCE), tmp_path_factory.mktemp("ts") / "ts-dedent")
    TypeScriptMutationRunner().prepare(repo)
    return repo


@pytest.mark.slow
def test_plugin_offers_the_runner_and_sources() -> None:
    plugin = registry.get("typescript")
    assert plugin.mutation_runner is not None and plugin.mutation_runner().tool.startswith("stryker@")
    assert any(s.ref == SOURCE and s.ships_tests for s in plugin.default_sources)
    assert any(not s.ships_tests and s.note for s in plugin.default_sources)


@pytest.mark.slow
def test_baseline_green_and_broken(repo: Path, tmp_path: Path) -> None:
    runner = TypeScriptMutationRunner()
    green, output = runner.baseline(repo, 300)
    assert green and "23 passed" in output, output
    broken = working_copy(repo, tmp_path / "broken")
    path = broken / "src" / "index.ts"
    path.write_text(path.read_text().replace("strings[0].replace(/^\\r?\\n/, '')", "strings[0]"))
    green, output = runner.baseline(broken, 300)
    assert not green and "failed" in output, output


@pytest.mark.slow
def test_run_normalises_real_mutants(repo: Path) -> None:
    # Lines 1-20 of the one source file keep the run short (~25 mutants).
    runner = TypeScriptMutationRunner(jobs=2, mutate=["src/index.ts:1-20"])
    records = runner.run(repo, SOURCE, None, 600)
    counts = check_records(records, repo, "typescript", "stryker@")
    assert counts["caught"] >= 10, counts
    assert all(r.file == "src/index.ts" and r.line and r.line <= 20 for r in records)
    caught = next(r for r in records if r.status == "caught")
    assert caught.function == "dedent" and caught.failing_tests[0].name.startswith("dedent")
    assert not (repo / ".stryker-tmp").exists() and not (repo / ".moa-stryker.json").exists()


def test_normalise_recorded_report() -> None:
    report = json.loads(FIXTURE.read_text())
    records = normalise(report, SOURCE, "stryker@9.6.1")
    by_status = {r.status for r in records}
    assert by_status == {"caught", "missed"}
    caught = next(r for r in records if r.status == "caught")
    assert caught.failing_tests and caught.failing_tests[0].excerpt
    assert "-  let strings" in caught.diff or caught.diff.count("\n-") >= 1


def test_replace_span_and_jest_config() -> None:
    assert replace_span("ab\ncd\nef", 2, 1, 3, 2, "X") == "ab\nXf"
    config = vitest_config({"jest": {"moduleNameMapper": {"^ts-dedent$": "<rootDir>/src/index.ts"}}})
    assert 'new RegExp("^@jest/globals$"), replacement: "vitest"' in config
    assert 'replacement: root + "src/index.ts"' in config
