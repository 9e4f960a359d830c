"""The Python evaluator: byte-compile + import the package, pytest, ruff.

"Builds" for Python means every file byte-compiles and the package imports: a syntax
error anywhere, or a module-level NameError/ImportError in the package, is the Python
compile failure. The interpreter is the repository's prepared `.venv` when it has one
(its dependencies), else moa's own (pytest and ruff are there). ruff uses the
repository's configuration when it has one, ruff's defaults otherwise.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from moa.languages.evaluators import (
    Lint,
    Runner,
    SuiteRun,
    ToolchainEvaluator,
    count_tests,
    register_evaluator,
    version_of,
)
from moa.languages.sandbox import Result, Sandbox

# Top-level names that are not the package under test.
NOT_PACKAGES = {
    "tests",
    "test",
    "testing",
    "docs",
    "doc",
    "examples",
    "example",
    "benchmarks",
    "bench",
    "scripts",
    "tools",
}
NOT_MODULES = {"setup.py", "conftest.py", "noxfile.py", "tasks.py", "fabfile.py", "manage.py"}

_BUILD = (
    "import compileall, importlib, re, sys\n"
    "ok = compileall.compile_dir('.', quiet=1, rx=re.compile(r'/(\\.venv|node_modules|\\.git)/'))\n"
    "if not ok: sys.exit(1)\n"
    "for name in sys.argv[1:]:\n"
    "    importlib.import_module(name)\n"
    "print('compiled; imported:', ', '.join(sys.argv[1:]) or '(no package found)')\n"
)


def python_for(repo: Path) -> str:
    venv = repo / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def ruff_path() -> str | None:
    beside = Path(sys.executable).parent / "ruff"
    return str(beside) if beside.exists() else shutil.which("ruff")


def import_root(repo: Path) -> Path:
    src = repo / "src"
    return src if src.is_dir() else repo


def top_level_modules(repo: Path) -> list[str]:
    """The importable names the repository ships (src layout or flat)."""
    names = []
    for path in sorted(import_root(repo).iterdir()):
        if path.name.startswith((".", "_")) or path.name in NOT_PACKAGES:
            continue
        if path.is_dir() and (path / "__init__.py").is_file():
            names.append(path.name)
        elif (
            path.suffix == ".py"
            and path.name not in NOT_MODULES
            and not path.name.startswith("test_")
            and not path.stem.endswith("_test")
        ):
            names.append(path.stem)
    return names


@register_evaluator("python")
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
        result = run(
            [python_for(repo), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--color=no", *tests],
            env=self._env(repo),
        )
        total, failed = count_tests(result.output)
        return SuiteRun(result, total, failed)

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
