"""The TypeScript evaluator: `tsc --noEmit`, the package's test runner, ESLint.

SuiteRun run the way the mutation runner ran them, so a mutation "caught" there is judged by
the same suite here: Vitest with moa's generated config when the package was prepared by
`moa.languages.typescript.mutation` (`.moa-vitest.config.mjs`), else the package's own
Vitest or Jest from its `node_modules`, else its `npm test` script.

The compiler and linter come from the package when it ships them, otherwise from one
pinned tool folder, ~/.cache/moa/tools/node-lint (installed on first use, under a lock):
npm tarballs rarely carry their tsconfig or ESLint config, so a missing one is replaced by
a sensible default (type-check the sources, not the tests, which the runner checks; ESLint's
and typescript-eslint's recommended rules). Plain-JavaScript packages get `node --check`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from moa.languages.evaluators import (
    BuildNameChecker,
    Lint,
    Runner,
    SuiteRun,
    count_tests,
    version_of,
)
from moa.languages.sandbox import Result, Sandbox
from moa.languages.tools import ToolError, check_call, install_once

TOOL = "node-lint"
TOOL_PACKAGES = {
    "eslint": "10.15.0",
    "@eslint/js": "10.0.1",
    "typescript-eslint": "8.73.0",
    "typescript": "5.9.3",
}
MOA_VITEST_CONFIG = ".moa-vitest.config.mjs"  # written by the mutation runner's prepare()
ESLINT_CONFIG = ".moa-eslint.config.mjs"
SKIP_DIRS = {"node_modules", "dist", "esm", "build", "lib-cjs", "coverage", ".stryker-tmp"}
TS_SUFFIXES = (".ts", ".tsx", ".mts", ".cts")
JS_SUFFIXES = (".js", ".mjs", ".cjs")
# Used when the package ships no tsconfig.json: strictness off (we cannot know the author's).
DEFAULT_TSC = [
    "--noEmit",
    "--skipLibCheck",
    "--target",
    "es2022",
    "--module",
    "esnext",
    "--moduleResolution",
    "bundler",
]
ENV = {"CI": "1", "NO_COLOR": "1", "FORCE_COLOR": "0"}


def _ready(folder: Path) -> bool:
    return all((folder / "node_modules" / name / "package.json").is_file() for name in TOOL_PACKAGES)


def ensure_tools() -> Path:
    """The pinned ESLint + TypeScript folder (network on first use only)."""

    def install(folder: Path) -> None:
        manifest = {"name": "moa-node-lint", "private": True, "dependencies": TOOL_PACKAGES}
        (folder / "package.json").write_text(json.dumps(manifest, indent=1))
        check_call(
            ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts"], folder, what="npm install"
        )

    return install_once(TOOL, _ready, install)


def sources(repo: Path, suffixes: tuple[str, ...], tests: bool = False) -> list[str]:
    """Source files (relative), without build output, declarations and (unless `tests`) tests."""
    found = []
    for root, dirs, files in os.walk(repo):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        is_test_dir = "__tests__" in Path(root).relative_to(repo).parts
        for name in sorted(files):
            if not name.endswith(suffixes) or ".d." in name:
                continue
            if not tests and (is_test_dir or ".test." in name or ".spec." in name):
                continue
            found.append((Path(root) / name).relative_to(repo).as_posix())
    return found


def _bin(repo: Path, package: str, script: str) -> str | None:
    path = repo / "node_modules" / package / script
    return str(path) if path.is_file() else None


def eslint_config(tools: Path) -> str:
    """A flat config that loads ESLint's and typescript-eslint's recommended rules from the
    tool folder (the config lives in the work folder, so ESLint lints it as its base path)."""
    return f"""// Written by moa: the package ships no ESLint config.
import {{ createRequire }} from 'node:module';
const require = createRequire({json.dumps(str(tools / "package.json"))});
const js = require('@eslint/js');
const tseslint = require('typescript-eslint');
export default [
  {{ ignores: ['node_modules/**', 'dist/**', 'esm/**', 'build/**', 'coverage/**', '**/*.d.ts', '{ESLINT_CONFIG}', '{MOA_VITEST_CONFIG}', '.moa-*'] }},
  js.configs.recommended,
  ...tseslint.configs.recommended,
];
"""


def _tsc(repo: Path) -> str:
    """The package's own TypeScript compiler, else moa's pinned one."""
    return _bin(repo, "typescript", "bin/tsc") or str(
        ensure_tools() / "node_modules" / "typescript" / "bin" / "tsc"
    )


class TypeScriptEvaluator(BuildNameChecker):
    language = "typescript"
    # tsc's unresolved names, properties, exported members and modules.
    UNDEFINED = re.compile(
        r"^(?P<path>[^\s(]+)\(\d+,\d+\): error TS(?:2304|2552|2339|2551|2305|2724|2307|2614|2694): "
        r"(?P<message>.+)$",
        re.M,
    )

    def install_tools(self) -> list[str]:
        ensure_tools()
        return [TOOL]

    def toolchain(self) -> str:
        return " | ".join((version_of("node", "--version"), *(f"{n}@{v}" for n, v in TOOL_PACKAGES.items())))

    def sandbox(self, repo: Path) -> Sandbox:
        return Sandbox()

    def build(self, repo: Path, run: Runner) -> Result:
        ts = sources(repo, TS_SUFFIXES)
        if not ts:  # a JavaScript package: syntax only
            return run(
                ["node", "--experimental-vm-modules", "-e", _NODE_CHECK, *sources(repo, JS_SUFFIXES)], env=ENV
            )
        tsc = _tsc(repo)
        if (repo / "tsconfig.json").is_file():
            return run(["node", tsc, "--noEmit", "-p", "tsconfig.json"], env=ENV)
        return run(["node", tsc, *DEFAULT_TSC, *ts], env=ENV)

    def name_check(self, repo: Path, run: Runner) -> Result:
        """The build's tsc; a JavaScript package's build checks syntax only, so its names are
        checked by tsc reading the JavaScript (`--checkJs`)."""
        if sources(repo, TS_SUFFIXES):
            return self.build(repo, run)
        tsc = _tsc(repo)
        return run(
            ["node", tsc, *DEFAULT_TSC, "--allowJs", "--checkJs", *sources(repo, JS_SUFFIXES)], env=ENV
        )

    def test(self, repo: Path, run: Runner, tests: Sequence[str] = ()) -> SuiteRun:
        vitest = _bin(repo, "vitest", "vitest.mjs")
        jest = _bin(repo, "jest", "bin/jest.js")
        select = ["-t", "|".join(re.escape(t) for t in tests)] if tests else []  # a name regex for both
        if vitest:
            config = ["--config", MOA_VITEST_CONFIG] if (repo / MOA_VITEST_CONFIG).is_file() else []
            result = run(["node", vitest, "run", *config, *select], env=ENV)
        elif jest:
            result = run(["node", jest, "--ci", "--cacheDirectory", ".moa-jest-cache", *select], env=ENV)
        elif json.loads((repo / "package.json").read_text()).get("scripts", {}).get("test"):
            result = run(["npm", "run", "test", "--ignore-scripts"], env=ENV)
        else:
            return SuiteRun(
                Result(1, "no test runner: the package has no vitest/jest installed and no test script", 0.0)
            )
        summary = "\n".join(line for line in result.output.splitlines() if line.strip().startswith("Tests"))
        total, failed = count_tests(summary)
        return SuiteRun(result, total, failed)

    def lint(self, repo: Path, run: Runner) -> Lint:
        try:
            tools = ensure_tools()
        except ToolError as exc:
            return Lint([], f"ESLint could not be installed, lint not judged: {exc}", available=False)
        own = [p.name for p in repo.glob("eslint.config.*")]
        eslint = _bin(repo, "eslint", "bin/eslint.js") if own else None
        if not eslint:
            (repo / ESLINT_CONFIG).write_text(eslint_config(tools))
        cmd = ["node", eslint or str(tools / "node_modules" / "eslint" / "bin" / "eslint.js")]
        cmd += [] if eslint else ["--config", ESLINT_CONFIG]
        files = sources(repo, TS_SUFFIXES + JS_SUFFIXES, tests=True)
        report_file = repo / ".moa-eslint.json"
        report_file.unlink(missing_ok=True)
        result = run(
            [*cmd, "--format", "json", "--output-file", report_file.name, "--no-warn-ignored", *files],
            env=ENV,
        )
        try:
            reports = json.loads(report_file.read_text())
        except (OSError, json.JSONDecodeError):
            return Lint([], f"ESLint failed, lint not judged:\n{result.output}", available=False)
        findings, shown = [], []
        for report in reports:
            path = Path(report["filePath"]).relative_to(repo).as_posix()
            for m in report["messages"]:
                rule = m.get("ruleId") or "parse"
                findings.append(f"{path}: {rule}: {m['message']}")
                shown.append(f"{path}:{m.get('line', 0)}: {rule}: {m['message']}")
        return Lint(findings, "eslint:\n" + "\n".join(shown) if shown else "eslint: clean")


# `node --check` takes one file; this checks many in one process, printing each syntax error.
_NODE_CHECK = """
const { readFileSync } = require('node:fs');
const vm = require('node:vm');
let bad = 0;
for (const file of process.argv.slice(1)) {
  const code = readFileSync(file, 'utf8');
  try {
    if (/\\.mjs$/.test(file) || /^\\s*(import|export)\\s/m.test(code)) new vm.SourceTextModule(code, { identifier: file });
    else new vm.Script(code, { filename: file });
  } catch (e) { bad++; console.log(`${file}: ${e.message}`); }
}
console.log(`${process.argv.length - 1} files checked, ${bad} with syntax errors`);
process.exit(bad ? 1 : 0);
"""
