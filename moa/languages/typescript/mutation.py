"""TypeScript mutation testing with StrykerJS and its Vitest runner.

Why one runner (Vitest) for every package: the tool folder under ~/.cache/moa/tools/stryker
holds Stryker, its Vitest plugin and Vitest at pinned versions, so a package needs none of its
own (often large) dev dependencies, only its runtime ones and the few its tests import (wonka's
callbag-from-iter). Vitest runs TypeScript directly (esbuild strips types) and also runs
Jest-style suites: we alias `@jest/globals` to `vitest`,
expose `vi` as the global `jest`, turn `describe`/`it`/`expect` globals on, and translate the
package's Jest `moduleNameMapper` into Vitest aliases. Suites that lean on Jest-only behaviour
(hoisted `jest.mock`, snapshot formats) fail the baseline and are reported, not mutated.

Stryker 9.6 is pinned because Stryker 10 needs Node 22 and this toolchain ships Node 20. The
TypeScript checker plugin is not used: a mutant that only breaks types still runs under
Vitest, so it is judged by the tests like any other.

Stryker has no "at most N mutants" option; `max_mutations` truncates the normalised records,
and `mutate` (Stryker globs, `file:START-END` line ranges allowed) narrows what is mutated.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moa.api.records import FailingTest, MutationRecord, MutationStatus, SourceRef
from moa.languages import sandbox
from moa.languages.base import enclosing
from moa.languages.sampling import operator_swap_class, stratified
from moa.languages.tools import (
    DiffError,
    RunnerBase,
    ToolError,
    check_call,
    excerpt,
    install_once,
    mutant_diff,
    mutant_timeout,
    replace_span,
    span_offsets,
)
from moa.languages.typescript.functions import functions

TOOL_PACKAGES = {
    "@stryker-mutator/core": "9.6.1",
    "@stryker-mutator/vitest-runner": "9.6.1",
    "vitest": "3.2.4",
}
STATUS: dict[str, MutationStatus] = {
    "Killed": "caught",
    "Survived": "missed",
    "NoCoverage": "missed",
    "Timeout": "timeout",
    "CompileError": "unviable",
    "RuntimeError": "unviable",
}
DEFAULT_MUTATE = [
    "{src,lib}/**/*.+(ts|mts|cts|tsx|js|mjs|cjs)",
    "!{src,lib}/**/*.d.+(ts|mts|cts)",
    "!{src,lib}/**/__tests__/**",
    "!{src,lib}/**/*.+(spec|test).*",
]
# Stryker's mutators -> bug class (moa.languages.sampling); EqualityOperator is told apart below.
MUTATOR_CLASSES: dict[str, str] = {
    "ArithmeticOperator": "arithmetic",
    "AssignmentOperator": "arithmetic",
    "UnaryOperator": "arithmetic",
    "UpdateOperator": "arithmetic",
    "EqualityOperator": "comparison",
    "LogicalOperator": "boolean",
    "BooleanLiteral": "boolean",
    "ConditionalExpression": "boolean",
    "MethodExpression": "call",
    "OptionalChaining": "other",
    "Regex": "other",
    "StringLiteral": "sentinel",
    "BlockStatement": "block",
    "ArrayDeclaration": "stub",
    "ObjectLiteral": "stub",
    "ArrowFunction": "stub",
}
_COMPARISON_OP = re.compile(r"[<>]=?|[!=]==?")
_VITEST_CONFIG = ".moa-vitest.config.mjs"
_STRYKER_CONFIG = ".moa-stryker.json"
_JEST_COMPAT = ".moa-jest-compat.mjs"
_VITEST_PASSED = re.compile(r"^\s*Tests\s+(?:.*?\|\s*)?(\d+) passed", re.MULTILINE)
# A failed test in Vitest's report: its "Failed Tests" section (`FAIL  file > describe > test`) or
# its per-file list (`× describe > test 12ms`); the section may be cut from an excerpt's tail.
_VITEST_FAIL = re.compile(r"^\s*(?:FAIL\s+\S+ > |× )(.+?)(?: \d+ms)?\s*$", re.MULTILINE)
# A test file that does not load (`FAIL  file [ file ]`, Vitest's "Failed Suites"): zod's import
# packages from its monorepo's root that its tarball declares nowhere. Named by its path.
_VITEST_FILE_FAIL = re.compile(r"^\s*FAIL\s+(\S+) \[ \S+ \]\s*$", re.MULTILINE)
# Vitest's 5 s default per test and hook fails sound suites on a loaded machine (zod's did); a
# hanging mutant is bounded by Stryker's own per-mutant timeout, not by this.
TEST_TIMEOUT_MS = 60_000
_DEV_DEPS = ".moa-dev-deps"  # the devDependencies the package's tests import (see prepare)
_NOT_DEV_DEPS = {*TOOL_PACKAGES, "@jest/globals", "jest", "ts-jest", "@types/jest"}
# A bare module specifier in `import ... from 'x'`, `import 'x'`, `import('x')`, `require('x')`.
_IMPORT = re.compile(r"""(?:\bfrom|\bimport|\brequire\s*\(|\bimport\s*\()\s*['"]([^'"./][^'"]*)['"]""")
_CODE_SUFFIXES = {".ts", ".mts", ".cts", ".tsx", ".js", ".mjs", ".cjs", ".jsx"}
# exports conditions every resolver knows; any other whose target is a .ts file names the sources
_STANDARD_CONDITIONS = {"types", "import", "require", "default", "node", "browser", "module"}


def _tool_ready(folder: Path) -> bool:
    modules = folder / "node_modules"
    return all((modules / name / "package.json").is_file() for name in TOOL_PACKAGES)


@dataclass
class TypeScriptMutationRunner(RunnerBase):
    mutate: list[str] = field(default_factory=lambda: list(DEFAULT_MUTATE))
    tool: str = f"stryker@{TOOL_PACKAGES['@stryker-mutator/core']}"

    def tool_path(self) -> Path:
        """The tool folder, installed on first use."""

        def install(folder: Path) -> None:
            manifest = {"name": "moa-stryker-tools", "private": True, "dependencies": TOOL_PACKAGES}
            (folder / "package.json").write_text(json.dumps(manifest, indent=1))
            check_call(
                ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts"], folder, what="npm install"
            )

        return install_once("stryker", _tool_ready, install)

    def prepare(self, repo: Path) -> None:
        """Install the package's runtime dependencies and the devDependencies its tests import
        (network in the fetch stage, npm's cache offline in mutate) and point it at the tool's
        Vitest."""
        tool = self.tool_path()
        manifest = _manifest(repo)
        if manifest.get("dependencies"):
            check_call(
                [
                    "npm",
                    "install",
                    "--omit=dev",
                    "--ignore-scripts",
                    "--no-audit",
                    "--no-fund",
                    "--no-package-lock",
                ],
                repo,
                what="npm install",
            )
        modules = repo / "node_modules"
        modules.mkdir(exist_ok=True)
        link = modules / "vitest"
        if not link.exists():
            link.symlink_to(tool / "node_modules" / "vitest", target_is_directory=True)
        _install_dev_deps(repo, manifest)
        if not _own_vitest_config(repo):
            (repo / _VITEST_CONFIG).write_text(vitest_config(manifest))
            (repo / _JEST_COMPAT).write_text("import { vi } from 'vitest';\nglobalThis.jest = vi;\n")

    def baseline(self, repo: Path, timeout_s: float, exclude_tests: Sequence[str] = ()) -> tuple[bool, str]:
        tool = self.tool_path()
        _exclude(repo, exclude_tests)
        vitest = tool / "node_modules" / "vitest" / "vitest.mjs"
        cmd = [
            "node",
            str(vitest),
            "run",
            *(["--config", _VITEST_CONFIG] if (repo / _VITEST_CONFIG).is_file() else []),
            f"--testTimeout={TEST_TIMEOUT_MS}",
            f"--hookTimeout={TEST_TIMEOUT_MS}",
        ]
        res = sandbox.run(
            cmd, repo, env={"CI": "1", "NO_COLOR": "1"}, limits=sandbox.Limits(timeout_s=timeout_s)
        )
        return self.baseline_result(res, limit=4000)

    def failing_tests(self, output: str) -> list[str]:
        """Full names ("describe test", as Stryker and `testNamePattern` name them) of the tests
        Vitest's report lists as failed, then the paths of the test files that failed to load."""
        names = [" ".join(m.split(" > ")) for m in _VITEST_FAIL.findall(output)]
        return list(dict.fromkeys([*names, *_VITEST_FILE_FAIL.findall(output)]))

    def passed_tests(self, output: str) -> int | None:
        """Tests passed, from Vitest's summary (`Tests  2 failed | 40 passed (42)`)."""
        m = _VITEST_PASSED.search(output)
        return int(m[1]) if m else None

    def run(
        self,
        repo: Path,
        source: SourceRef,
        max_mutations: int | None,
        timeout_s: float,
        exclude_tests: Sequence[str] = (),
    ) -> list[MutationRecord]:
        """Stryker over the package (sandboxed, offline).

        `timeout_s` bounds the whole run; each mutant's tests get `mutant_timeout(baseline)`.
        `exclude_tests` (full Vitest names, "describe test") are left out by a name pattern.
        """
        tool = self.tool_path()
        _exclude(repo, exclude_tests)
        with tempfile.TemporaryDirectory(prefix="moa-stryker-") as out_dir:
            report_path = Path(out_dir) / "mutation.json"
            config = self._config(repo, report_path, mutant_timeout(self.baseline_s, timeout_s))
            if max_mutations is not None and self.mutate == DEFAULT_MUTATE:  # not narrowed by the caller
                config["mutate"] = self._function_ranges(repo, max_mutations)
            (repo / _STRYKER_CONFIG).write_text(json.dumps(config, indent=1))
            stryker = tool / "node_modules" / "@stryker-mutator" / "core" / "bin" / "stryker.js"
            res = sandbox.run(
                ["node", str(stryker), "run", _STRYKER_CONFIG],
                repo,
                writable=[Path(out_dir)],
                env={"CI": "1", "NO_COLOR": "1"},
                limits=sandbox.Limits(timeout_s=timeout_s),
            )
            (repo / _STRYKER_CONFIG).unlink(missing_ok=True)
            shutil.rmtree(repo / ".stryker-tmp", ignore_errors=True)
            if not report_path.is_file():
                raise ToolError(
                    f"stryker wrote no report in {repo} (exit {res.returncode}):\n{excerpt(res.output)}"
                )
            report = json.loads(report_path.read_text())
        records = normalise(report, source, self.tool, self.rejected)
        # Stryker cannot run chosen mutants, only chosen lines: the final draw is from its results.
        return self.draw(records, max_mutations, lambda r: (r.file, r.function or "", r.operator_class))

    def _function_ranges(self, repo: Path, n: int) -> list[str]:
        """Stryker `mutate` entries (`file:START-END`) for functions drawn like mutants (seeded,
        spread over files), about one function per two wanted mutants: what keeps a capped run
        from testing every mutant of a package."""
        spans = [
            (str(path.relative_to(repo)), span)
            for path in _mutable_files(repo)
            for span in functions(str(path.relative_to(repo)), path.read_text(errors="replace"))
        ]
        # nested functions lie inside their parents' ranges: draw among the outermost only
        outer = [
            (f, s)
            for f, s in spans
            if not any(g == f and o != s and o.start <= s.start and s.end <= o.end for g, o in spans)
        ]
        drawn = stratified(outer, max(1, (n + 1) // 2), self.seed, lambda fs: (fs[0], fs[1].name))
        return [f"{f}:{s.start}-{s.end}" for f, s in drawn] or self.mutate

    def raw_command(
        self, repo: Path, sample: int | None = None
    ) -> tuple[list[str], dict[str, str], tuple[int, ...]]:
        """Stryker as a person runs it (bench/datagen_overhead.py): on the whole package, or on the
        functions `run` draws for `max_mutations=sample`, so both sides of the bench test the same
        mutants; its own timeout rule, the report in reports/; argv, environment, the exit codes
        of a finished run."""
        config = self._config(repo, repo / "reports" / "mutation.json", None)
        if sample is not None:
            config["mutate"] = self._function_ranges(repo, sample)
        (repo / _STRYKER_CONFIG).write_text(json.dumps(config, indent=1))
        stryker = self.tool_path() / "node_modules" / "@stryker-mutator" / "core" / "bin" / "stryker.js"
        return ["node", str(stryker), "run", _STRYKER_CONFIG], {"CI": "1", "NO_COLOR": "1"}, (0,)

    def _config(self, repo: Path, report_path: Path, timeout_s: float | None) -> dict[str, Any]:
        """Stryker's configuration: the Vitest runner from the tool folder, a JSON report."""
        tool = self.tool_path()
        config: dict[str, Any] = {
            "testRunner": "vitest",
            "plugins": [(tool / "node_modules/@stryker-mutator/vitest-runner/dist/src/index.js").as_uri()],
            "reporters": ["json", "progress-append-only"],
            "jsonReporter": {"fileName": str(report_path)},
            "mutate": self.mutate,
            "coverageAnalysis": "perTest",
            "concurrency": max(1, self.jobs),
            "tempDirName": ".stryker-tmp",
            "cleanTempDir": "always",
            "mutator": {"excludedMutations": self._excluded_mutators()},
        }
        if timeout_s is not None:
            config["timeoutMS"] = int(timeout_s * 1000)
        if (repo / _VITEST_CONFIG).is_file():
            config["vitest"] = {"configFile": _VITEST_CONFIG}
        return config

    def _excluded_mutators(self) -> list[str]:
        allowed = self.operator_classes
        if allowed is None:
            return []
        return [
            name
            for name, cls in MUTATOR_CLASSES.items()
            if cls not in allowed and not (name == "EqualityOperator" and "boundary" in allowed)
        ]


def normalise(
    report: dict[str, Any], source: SourceRef, tool: str, rejected: Counter[str]
) -> list[MutationRecord]:
    """A mutation-testing-report-schema document (Stryker's mutation.json) into records; a mutant
    whose diff cannot be made right is counted in `rejected` instead."""
    tests = {
        t["id"]: t.get("name", t["id"]) for f in (report.get("testFiles") or {}).values() for t in f["tests"]
    }
    records = []
    for path, entry in sorted(report["files"].items()):
        fixed = entry["source"]
        spans = functions(path, fixed)
        for m in sorted(
            entry["mutants"], key=lambda m: (m["location"]["start"]["line"], m["location"]["start"]["column"])
        ):
            status = STATUS.get(m["status"])
            if status is None:  # Ignored / Pending: never run
                continue
            start, end = m["location"]["start"], m["location"]["end"]
            buggy = replace_span(
                fixed, start["line"], start["column"], end["line"], end["column"], m["replacement"]
            )
            try:
                diff = mutant_diff(path, fixed, buggy)
            except DiffError:
                rejected["diff_roundtrip"] += 1
                continue
            killers = [tests.get(t, t) for t in m.get("killedBy") or []]
            reason = excerpt(m.get("statusReason") or "", 1500)
            records.append(
                MutationRecord(
                    language="typescript",
                    source=str(source),
                    version=source.version,
                    file=path,
                    function=enclosing(spans, start["line"]),
                    line=start["line"],
                    operator=f"{m['mutatorName']}: {m['replacement']}"[:200],
                    operator_class=bug_class(m["mutatorName"], original(fixed, start, end), m["replacement"]),
                    diff=diff,
                    status=status,
                    failing_tests=[FailingTest(name=k, excerpt=reason) for k in killers]
                    if status == "caught"
                    else [],
                    tool=tool,
                    timings={"test_ms": float(m["duration"])} if "duration" in m else {},
                )
            )
    return records


def original(text: str, start: dict[str, int], end: dict[str, int]) -> str:
    """The source text a mutant replaces."""
    a, b = span_offsets(text, start["line"], start["column"], end["line"], end["column"])
    return text[a:b]


def bug_class(mutator: str, old: str, new: str) -> str:
    """Stryker's mutator -> bug class; an EqualityOperator is a boundary when it moves `<` to `<=`."""
    if mutator == "EqualityOperator":
        a, b = _COMPARISON_OP.search(old), _COMPARISON_OP.search(new)
        return operator_swap_class(a[0], b[0]) if a and b else "comparison"
    return MUTATOR_CLASSES.get(mutator, "other")


def vitest_config(
    manifest: dict[str, Any], exclude_tests: Sequence[str] = (), exclude_files: Sequence[str] = ()
) -> str:
    """A Vitest config that also runs Jest-style suites (see the module docstring), without the
    tests named `exclude_tests` and the test files `exclude_files`."""
    aliases = [("^@jest/globals$", "vitest"), *source_aliases(manifest)]
    jest = manifest.get("jest")
    mapper = jest.get("moduleNameMapper") if isinstance(jest, dict) else None
    for pattern, target in (mapper or {}).items():
        if isinstance(target, str):
            aliases.append((pattern, target))
    alias_js = ",\n    ".join(
        f"{{ find: new RegExp({json.dumps(p)}), replacement: {_js_target(t)} }}" for p, t in aliases
    )
    name_filter = ""
    if exclude_tests:
        names = "|".join(re.escape(t) for t in exclude_tests)
        name_filter = f"\n    testNamePattern: new RegExp({json.dumps(f'^(?!(?:{names})$)')}),"
    return f"""// Written by moa for mutation testing; see moa/languages/typescript/mutation.py.
import {{ fileURLToPath }} from 'node:url';
import {{ defineConfig }} from 'vitest/config';
const root = fileURLToPath(new URL('.', import.meta.url));
export default defineConfig({{
  resolve: {{ alias: [
    {alias_js}
  ] }},
  test: {{
    globals: true,
    setupFiles: [fileURLToPath(new URL('./{_JEST_COMPAT}', import.meta.url))],
    exclude: {json.dumps(["**/node_modules/**", "**/dist/**", "**/.stryker-tmp/**", *exclude_files])},
    testTimeout: {TEST_TIMEOUT_MS},
    hookTimeout: {TEST_TIMEOUT_MS},{name_filter}
  }},
}});
"""


def source_aliases(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """Aliases that send the package's imports of itself (zod's tests import "zod/v4") to its
    TypeScript sources, as its `exports` map does under a condition of its own ("@zod/source"):
    by default they resolve to the built files, which no mutant touches."""
    name, exports = manifest.get("name"), manifest.get("exports")
    if not isinstance(name, str) or not isinstance(exports, dict):
        return []
    aliases = []
    for subpath, target in exports.items():
        source = _source_target(target)
        if subpath.startswith(".") and "*" not in subpath and source:
            aliases.append((f"^{re.escape(name + subpath[1:])}$", f"<rootDir>/{source.removeprefix('./')}"))
    return aliases


def _source_target(target: Any) -> str | None:
    """The .ts file a conditional export maps a non-standard condition to, if any."""
    if not isinstance(target, dict):
        return None
    for condition, value in target.items():
        if isinstance(value, dict):
            found = _source_target(value)
            if found:
                return found
        elif (
            condition not in _STANDARD_CONDITIONS
            and isinstance(value, str)
            and re.search(r"(?<!\.d)\.[mc]?tsx?$", value)
        ):
            return value
    return None


def imported_packages(repo: Path) -> set[str]:
    """Packages the tree's code and tests import by bare specifier (`@scope/name`, `name`)."""
    names = set()
    for path in repo.rglob("*"):
        parts = path.relative_to(repo).parts
        if path.suffix not in _CODE_SUFFIXES or "node_modules" in parts or parts[0].startswith("."):
            continue
        for spec in _IMPORT.findall(path.read_text(errors="replace")):
            names.add("/".join(spec.split("/")[: 2 if spec.startswith("@") else 1]))
    return names


def _install_dev_deps(repo: Path, manifest: dict[str, Any]) -> None:
    """The devDependencies the tests import (wonka's import callbag-from-iter), installed in a
    folder of their own and linked into node_modules: `npm install --omit=dev` skips them even
    when named, and installing every devDependency brings bundlers and linters by the hundred."""
    dev, runtime = manifest.get("devDependencies") or {}, manifest.get("dependencies") or {}
    wanted = {
        name: dev[name]
        for name in sorted(imported_packages(repo))
        if name in dev and name not in runtime and name not in _NOT_DEV_DEPS and name != manifest.get("name")
    }
    if not wanted:
        return
    folder = repo / _DEV_DEPS
    folder.mkdir(exist_ok=True)
    (folder / "package.json").write_text(
        json.dumps({"name": "moa-dev-deps", "private": True, "dependencies": wanted}, indent=1)
    )
    check_call(
        ["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", "--no-package-lock"],
        folder,
        what=f"npm install of the test dependencies {sorted(wanted)}",
    )
    for name in wanted:
        link = repo / "node_modules" / name
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            # relative: Stryker's sandbox links node_modules back to this folder
            depth = len(Path(name).parts)
            link.symlink_to(Path(*[".."] * depth, _DEV_DEPS, "node_modules", name), target_is_directory=True)


def _exclude(repo: Path, tests: Sequence[str]) -> None:
    """Leave `tests` (flaky, or red at baseline; test names or test files that did not load) out
    of every later Vitest run of `repo`."""
    if not tests:
        return
    if not (repo / _VITEST_CONFIG).is_file():
        raise ToolError(f"{repo} brings its own Vitest config: cannot exclude tests {list(tests)}")
    files = [t for t in tests if (repo / t).is_file()]
    names = [t for t in tests if t not in files]
    (repo / _VITEST_CONFIG).write_text(vitest_config(_manifest(repo), names, files))


def _js_target(target: str) -> str:
    if target.startswith("<rootDir>/"):
        return f"root + {json.dumps(target[len('<rootDir>/') :])}"
    return json.dumps(target)


def _manifest(repo: Path) -> dict[str, Any]:
    path = repo / "package.json"
    if not path.is_file():
        raise ToolError(
            f"{repo} has no package.json: TypeScript sources must be npm packages (npm:NAME@VERSION)"
        )
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _mutable_files(repo: Path) -> list[Path]:
    """The files DEFAULT_MUTATE selects (its globs, read in Python), in a stable order."""
    suffixes = {".ts", ".mts", ".cts", ".tsx", ".js", ".mjs", ".cjs"}
    out = []
    for top in ("src", "lib"):
        for path in sorted((repo / top).rglob("*")) if (repo / top).is_dir() else []:
            name = path.name
            if (
                path.is_file()
                and path.suffix in suffixes
                and not re.search(r"\.d\.[mc]?ts$|\.(spec|test)\.", name)
                and "__tests__" not in path.relative_to(repo).parts
            ):
                out.append(path)
    return out


def _own_vitest_config(repo: Path) -> bool:
    return any(repo.glob("vitest.config.*")) or any(repo.glob("vite.config.*"))
