"""The Python evaluator: byte-compile + import the package, pytest, ruff.

"Builds" for Python means every file byte-compiles and the package imports: a syntax
error anywhere, or a module-level NameError/ImportError in the package, is the Python
compile failure. The interpreter is the venv `moa.languages.python.mutation` prepared in
the tree (`.moa-venv`: its dependencies, pytest), or a `.venv`, else moa's own; the code
under test is always the work folder's (PYTHONPATH goes before an editable install).
Package and test discovery are the mutation runner's, so both judge the same suites.
ruff uses the repository's configuration when it has one, ruff's defaults otherwise.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from moa.languages.evaluators import (
    Lint,
    Runner,
    SuiteRun,
    ToolchainEvaluator,
    count_tests,
    version_of,
)
from moa.languages.python.mutation import VENV, layout
from moa.languages.sandbox import Result, Sandbox

_BUILD = (
    "import compileall, importlib, re, sys\n"
    "ok = compileall.compile_dir('.', quiet=1, rx=re.compile(r'/(\\.[^/]+|node_modules)/'))\n"
    "if not ok: sys.exit(1)\n"
    "for name in sys.argv[1:]:\n"
    "    importlib.import_module(name)\n"
    "print('compiled; imported:', ', '.join(sys.argv[1:]) or '(no package found)')\n"
)


def python_for(repo: Path) -> str:
    """The prepared venv's interpreter (the mutation runner's, else a `.venv`), else moa's."""
    for venv in (VENV, ".venv"):
        if (repo / venv / "bin" / "python").exists():
            return str(repo / venv / "bin" / "python")
    return sys.executable


def ruff_path() -> str | None:
    beside = Path(sys.executable).parent / "ruff"
    return str(beside) if beside.exists() else shutil.which("ruff")


def import_root(repo: Path) -> Path:
    src = repo / "src"
    return src if src.is_dir() else repo


def top_level_modules(repo: Path) -> list[str]:
    """The importable names the repository ships: what the mutation runner mutates."""
    sources, _ = layout(repo)
    return [Path(s.rstrip("/")).stem for s in sources]


class PythonEvaluator(ToolchainEvaluator):
    language = "python"

    def toolchain(self) -> str:
        ruff = ruff_path()
        return " | ".join(
            (
                version_of(sys.executable, "--version"),
                version_of(sys.executable, "-m", "pytest", "--version"),
                version_of(ruff, "--version") if ruff else "ruff: absent",
            )
        )

    def sandbox(self, repo: Path) -> Sandbox:
        return Sandbox()

    def _env(self, repo: Path) -> dict[str, str]:
        return {"PYTHONPATH": str(import_root(repo)), "PYTHONHASHSEED": "0"}

    def build(self, repo: Path, run: Runner) -> Result:
        return run([python_for(repo), "-c", _BUILD, *top_level_modules(repo)], env=self._env(repo))

    def test(self, repo: Path, run: Runner, tests: Sequence[str] = ()) -> SuiteRun:
        # The suites the mutation runner ran, unless the caller names tests.
        selected = list(tests) or layout(repo)[1]
        result = run(
            [python_for(repo), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--color=no", *selected],
            env=self._env(repo),
        )
        total, failed = count_tests(result.output)
        return SuiteRun(result, total, failed)

    def undefined_names(
        self, repo: Path, files: Sequence[str], timeout_s: float = 600.0
    ) -> set[tuple[str, str]]:
        """(file, message) of ruff's undefined-name findings (F821) in `files`: static, nothing
        runs, so no sandbox is needed (the `NameChecker` interface)."""
        targets = [f for f in files if f.endswith(".py") and (repo / f).is_file()]
        ruff = ruff_path()
        if not targets:
            return set()
        if ruff is None:
            raise RuntimeError(
                "ruff not found (install moa's [dev] extra): undefined names cannot be checked"
            )
        done = subprocess.run(
            [
                ruff,
                "check",
                "--isolated",
                "--select",
                "F821",
                "--output-format",
                "json",
                "--no-cache",
                *targets,
            ],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        try:
            found = json.loads(done.stdout or "[]")
        except ValueError:
            raise RuntimeError(
                f"ruff gave no JSON for the undefined-name check: {done.stderr[:300]}"
            ) from None
        return {
            (Path(f["filename"]).resolve().relative_to(repo.resolve()).as_posix(), f["message"])
            for f in found
        }

    def lint(self, repo: Path, run: Runner) -> Lint:
        ruff = ruff_path()
        if ruff is None:
            return Lint([], "ruff not found (install moa's [dev] extra): lint not judged", available=False)
        report = repo / ".moa-ruff.json"
        report.unlink(missing_ok=True)
        result = run(
            [
                ruff,
                "check",
                "--no-cache",
                "--exit-zero",
                "--output-format",
                "json",
                "--output-file",
                report.name,
                ".",
            ]
        )
        try:
            found = json.loads(report.read_text())
        except (OSError, json.JSONDecodeError):
            return Lint([], f"ruff failed, lint not judged:\n{result.output}", available=False)
        findings = [
            f"{Path(f['filename']).resolve().relative_to(repo).as_posix()}: {f['code'] or 'syntax'}: {f['message']}"
            for f in found
        ]
        shown = [
            f"{Path(f['filename']).resolve().relative_to(repo).as_posix()}:{f['location']['row']}: {f['code']} {f['message']}"
            for f in found
        ]
        return Lint(findings, "ruff check:\n" + "\n".join(shown) if shown else "ruff check: clean")
