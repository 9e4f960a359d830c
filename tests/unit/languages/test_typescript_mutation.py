"""The TypeScript mutation runner (StrykerJS) on ts-dedent, a real npm tarball with its Jest suite."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from mutation_checks import check_records, working_copy

from moa.api.records import SourceRef
from moa.languages import registry
from moa.languages.sources import fetch
from moa.languages.tools import replace_span
from moa.languages.typescript.mutation import (
    TEST_TIMEOUT_MS,
    TypeScriptMutationRunner,
    imported_packages,
    normalise,
    source_aliases,
    vitest_config,
)

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
    rejected: Counter[str] = Counter()
    records = normalise(report, SOURCE, "stryker@9.6.1", rejected)
    assert not rejected and records
    by_status = {r.status for r in records}
    assert by_status == {"caught", "missed"}
    caught = next(r for r in records if r.status == "caught")
    assert caught.failing_tests and caught.failing_tests[0].excerpt
    assert "-  let strings" in caught.diff or caught.diff.count("\n-") >= 1
    assert caught.function == "dedent", caught.function


def test_failing_tests_from_vitest_report() -> None:
    out = (
        " ✓ src/a.test.ts (2 tests) 3ms\n FAIL  src/index.test.ts > dedent > keeps blank lines\n"
        "AssertionError: expected 'a' to be 'b'\n FAIL  src/b.test.ts > top level\n"
        " ❯ src/c.test.ts (2 tests | 1 failed) 7607ms\n   × parse > compiles 7605ms\n     → Test timed out in 5000ms.\n"
    )
    names = TypeScriptMutationRunner().failing_tests(out)
    assert names == ["dedent keeps blank lines", "top level", "parse compiles"]
    # zod's test files that import packages its tarball does not declare: named by their paths
    out = (
        " ❯ src/v4/core/tests/treeshake.test.ts (0 test)\n Test Files  1 failed | 191 passed (192)\n"
        "⎯⎯⎯ Failed Suites 1 ⎯⎯⎯\n\n FAIL  src/v4/core/tests/treeshake.test.ts [ src/v4/core/tests/treeshake.test.ts ]\n"
        "Error: Failed to load url esbuild (resolved id: esbuild)\n"
    )
    assert TypeScriptMutationRunner().failing_tests(out) == ["src/v4/core/tests/treeshake.test.ts"]
    config = vitest_config({}, ["top level"], ["src/v4/core/tests/treeshake.test.ts"])
    assert '"**/.stryker-tmp/**", "src/v4/core/tests/treeshake.test.ts"]' in config
    assert 'testNamePattern: new RegExp("^(?!(?:top\\\\ level)$)")' in config


def test_replace_span_and_jest_config() -> None:
    assert replace_span("ab\ncd\nef", 2, 1, 3, 2, "X") == "ab\nXf"
    config = vitest_config({"jest": {"moduleNameMapper": {"^ts-dedent$": "<rootDir>/src/index.ts"}}})
    assert 'new RegExp("^@jest/globals$"), replacement: "vitest"' in config
    assert 'replacement: root + "src/index.ts"' in config


def test_a_capped_run_mutates_drawn_functions_across_files(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        body = "\n".join(
            f"export function {name}{i}(x: number): number {{\n  return x + {i};\n}}" for i in range(10)
        )
        (tmp_path / "src" / name).mkdir(parents=True)
        (tmp_path / "src" / name / "index.ts").write_text(body + "\n")
    (tmp_path / "src" / "a" / "index.test.ts").write_text("export function notMutated() {}\n")
    runner = TypeScriptMutationRunner(seed=3)
    ranges = runner._function_ranges(tmp_path, 6)
    assert len(ranges) == 3 and {r.split("/")[1] for r in ranges} == {"a", "b", "c"}, ranges
    assert all(
        r.endswith(("-3", "-6", "-9", "-12", "-15", "-18", "-21", "-24", "-27", "-30")) for r in ranges
    )
    assert runner._function_ranges(tmp_path, 6) == ranges and not any("test" in r for r in ranges)


def test_aliases_send_the_package_s_imports_of_itself_to_its_sources() -> None:
    manifest = {
        "name": "zod",
        "exports": {
            "./package.json": "./package.json",
            ".": {"@zod/source": "./src/index.ts", "types": "./index.d.cts", "import": "./index.js"},
            "./v4/core": {"@zod/source": "./src/v4/core/index.ts", "import": "./v4/core/index.js"},
            "./mini": {"types": "./mini/index.d.ts", "import": "./mini/index.js"},
        },
    }
    assert source_aliases(manifest) == [
        ("^zod$", "<rootDir>/src/index.ts"),
        ("^zod/v4/core$", "<rootDir>/src/v4/core/index.ts"),
    ]
    config = vitest_config(manifest)
    assert 'find: new RegExp("^zod/v4/core$"), replacement: root + "src/v4/core/index.ts"' in config
    assert f"testTimeout: {TEST_TIMEOUT_MS}," in config and f"hookTimeout: {TEST_TIMEOUT_MS}," in config
    assert source_aliases({"name": "x", "exports": "./index.js"}) == []


def test_imported_packages_are_read_from_code_and_tests(tmp_path: Path) -> None:
    files = {
        "src/a.ts": "import { x } from './b';\nimport type { T } from '@scope/pkg/sub';\n",
        "src/__tests__/a.test.ts": "import fromIter from 'callbag-from-iter';\nconst m = require(\"ms\");\n",
        "src/c.mjs": "import 'side-effect';\nconst later = await import('lazy/deep/path');\n",
        "node_modules/dep/index.js": "import 'never-read';\n",
        "README.md": "import 'not-code';\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert imported_packages(tmp_path) == {"@scope/pkg", "callbag-from-iter", "ms", "side-effect", "lazy"}


# A package whose tests import one of its devDependencies (as wonka's import callbag-from-iter)
# and whose one slow test outlives Vitest's 5 s default (as zod's did on a loaded machine).
ADD = "export function add(a: number, b: number): number {\n  if (a > b) {\n    return b + a;\n  }\n  return a + b;\n}\n"
ADD_TEST = """import { describe, expect, it } from 'vitest';
import ms from 'ms';
import { add } from '../src/add';

describe('add', () => {
  it('adds durations', () => {
    expect(add(ms('1s'), 1)).toBe(1001);
    expect(add(1, ms('1s'))).toBe(1001);
    expect(add(2, -3)).toBe(-1);
  });
  it('waits longer than five seconds', async () => {
    await new Promise((done) => setTimeout(done, 6000));
    expect(add(1, 2)).toBe(3);
  });
});
"""


@pytest.mark.slow
def test_tests_importing_dev_dependencies_and_slow_tests_run(tmp_path: Path) -> None:
    repo = tmp_path / "adder"
    manifest = {"name": "adder", "version": "1.0.0", "devDependencies": {"ms": "2.1.3", "eslint": "^9"}}
    files = {"package.json": json.dumps(manifest), "src/add.ts": ADD, "test/add.test.ts": ADD_TEST}
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    runner = TypeScriptMutationRunner(jobs=1)
    runner.prepare(repo)
    assert (repo / "node_modules" / "ms" / "package.json").is_file()
    assert not (repo / "node_modules" / "eslint").exists()  # a devDependency no test imports
    green, output = runner.baseline(repo, 300)
    assert green and "2 passed" in output, output
    records = runner.run(repo, SourceRef.parse(f"path:{repo}"), None, 900)
    caught = [r for r in records if r.status == "caught"]
    assert caught and all(r.function == "add" for r in caught), records
    assert all(t.name.startswith("add ") for r in caught for t in r.failing_tests), caught
