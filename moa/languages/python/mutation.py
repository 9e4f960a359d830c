"""Python mutation runner: mutmut 3 on an unpacked source tree.

Two environments, on purpose. mutmut lives in a tool venv under ~/.cache/moa/tools/mutmut (built
once, under a lock) so moa's own venv never carries it; the target repo gets its own venv
(`.moa-venv` inside the scratch tree) with its dependencies and pytest. mutmut runs pytest
in-process, so it must import the target's packages: a `.pth` file appends the tool venv's
site-packages to the target venv, behind the target's own (the target's pytest wins).

Everything that executes the target's code goes through `moa.languages.sandbox`: `prepare` with
network (pip), baseline/mutation runs without.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tokenize
from collections.abc import Sequence
from io import StringIO
from pathlib import Path

from moa.api.records import MutationRecord, MutationStatus, SourceRef
from moa.languages.sandbox import Limits, Result, run
from moa.languages.tools import cache_dir, file_lock, tools_dir

MUTMUT_VERSION = "3.8.1"
VENV = ".moa-venv"
_EXPORT = Path(__file__).with_name("mutmut_export.py")
_PY = f"python{sys.version_info.major}.{sys.version_info.minor}"

# mutmut status -> record status; "not checked" / "interrupted" are not results and are dropped.
STATUS: dict[str, MutationStatus] = {
    "killed": "caught",
    "caught by type check": "caught",
    "survived": "missed",
    "timeout": "timeout",
    "suspicious": "unviable",
    "no tests": "unviable",
    "skipped": "unviable",
    "segfault": "unviable",
}
_NOT_SOURCE = {
    "setup.py",
    "conftest.py",
    "noxfile.py",
    "tasks.py",
    "fabfile.py",
    "manage.py",
    "versioneer.py",
}
_NOT_PACKAGE = {
    "tests",
    "test",
    "testing",
    "docs",
    "doc",
    "examples",
    "example",
    "benchmarks",
    "scripts",
    "tools",
    "build",
}
# Projects' addopts often name plugins we do not install (--cov=...); the suite runs without them.
_NO_ADDOPTS = "--override-ini=addopts="
_FAILED_RE = re.compile(r"^(?:FAILED|ERROR) (\S+?)(?: - .*)?$", re.MULTILINE)


moa_cache = cache_dir


def base_python() -> str:
    """The interpreter under moa's venv: target and tool venvs must share its version (.pth trick)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def layout(repo: Path) -> tuple[list[str], list[str]]:
    """(paths to mutate, test paths) of a Python source tree, by the usual conventions."""
    root = repo / "src" if (repo / "src").is_dir() else repo
    sources = sorted(
        str(p.relative_to(repo)) + ("/" if p.is_dir() else "")
        for p in root.iterdir()
        if (p.is_dir() and (p / "__init__.py").is_file() and p.name not in _NOT_PACKAGE)
        or (
            p.suffix == ".py"
            and p.name not in _NOT_SOURCE
            and not p.name.startswith("test")
            and not p.name.endswith("_test.py")
        )
    )
    tests = [d for d in ("tests", "test", "testing") if (repo / d).is_dir()]
    tests += sorted(p.name for p in repo.glob("test*.py") if p.is_file())
    if not tests:  # tests shipped inside the package (toolz/tests, src/isodate/tests)
        tests = sorted(str(p.relative_to(repo)) for p in root.glob("*/tests") if p.is_dir())
    return sources, tests


def classify(diff: str) -> str:
    """A mutation operator name from a fixed -> buggy diff, e.g. `arithmetic:+->-`, `string`, `none`.

    The class before `:` is what the stage caps per operator; the rest says what changed."""
    removed = "".join(
        ln[1:] for ln in diff.splitlines(keepends=True) if ln.startswith("-") and not ln.startswith("---")
    )
    added = "".join(
        ln[1:] for ln in diff.splitlines(keepends=True) if ln.startswith("+") and not ln.startswith("+++")
    )
    old, new = _tokens(removed), _tokens(added)
    i = 0
    while i < min(len(old), len(new)) and old[i] == new[i]:
        i += 1
    j = 0
    while j < min(len(old), len(new)) - i and old[-1 - j] == new[-1 - j]:
        j += 1
    a, b = old[i : len(old) - j], new[i : len(new) - j]
    sa, sb = " ".join(t for _, t in a), " ".join(t for _, t in b)
    kinds = {k for k, _ in a + b}
    if b and sb == "None":
        return "none"  # an expression or argument replaced by None
    if {sa, sb} <= {"and", "or"} or "not" in (sa.split()[:1] + sb.split()[:1]):
        return f"boolean:{sa}->{sb}"
    if not b and a:
        return "removal"  # an argument or operand dropped
    if kinds <= {tokenize.STRING}:
        return "string"
    if kinds <= {tokenize.NUMBER}:
        return f"number:{sa}->{sb}"
    if {sa, sb} <= {"True", "False"}:
        return f"bool:{sa}->{sb}"
    if {sa, sb} <= {"break", "continue", "return"}:
        return f"keyword:{sa}->{sb}"
    if kinds <= {tokenize.OP}:
        groups = {
            "arithmetic": {"+", "-", "*", "/", "//", "%", "**", "@", "<<", ">>", "&", "|", "^", "~"},
            "comparison": {"<", "<=", ">", ">=", "==", "!=", "is", "in"},
            "assignment": {"=", "+=", "-=", "*=", "/=", "//=", "%=", "**=", "|=", "&=", "^=", ">>=", "<<="},
        }
        for group, ops in groups.items():
            if set(sa.split()) | set(sb.split()) <= ops:
                return f"{group}:{sa}->{sb}"
    if any(t in {"is", "in", "not"} for t in (sa + " " + sb).split()):
        return f"comparison:{sa}->{sb}"[:80]
    if a and b and kinds <= {tokenize.NAME}:
        return f"name:{sa}->{sb}"[:80]
    return "other"


def _tokens(code: str) -> list[tuple[int, str]]:
    """Significant tokens (no comments, newlines or indentation) of a code fragment, tolerantly."""
    out: list[tuple[int, str]] = []
    skip = {
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENDMARKER,
    }
    try:
        for tok in tokenize.generate_tokens(StringIO(code).readline):
            if tok.type not in skip:
                out.append((tok.type, tok.string))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return out


def first_changed_line(diff: str) -> int | None:
    """Line number (in the fixed file) of the first removed or added line of a unified diff."""
    line = None
    for text in diff.splitlines():
        m = re.match(r"^@@ -(\d+)", text)
        if m:
            line = int(m[1])
        elif line is not None:
            if text.startswith(("-", "+")) and not text.startswith(("---", "+++")):
                return line
            line += 1
    return None


class MutmutRunner:
    """`MutationRunner` for Python: mutmut 3 + pytest."""

    tool = "mutmut"

    def __init__(self, jobs: int | None = None) -> None:
        self.jobs = jobs or os.cpu_count() or 2

    # -- tool -------------------------------------------------------------------------------

    @property
    def tool_dir(self) -> Path:
        return tools_dir() / "mutmut" / f"{MUTMUT_VERSION}-{_PY}"

    def ensure_tool(self) -> None:
        done = self.tool_dir / ".installed"
        if done.is_file():
            return
        with file_lock(self.tool_dir.parent / f"{self.tool_dir.name}.lock"):
            if done.is_file():
                return
            # A venv is not relocatable, so it is built at its final path; `.installed` marks it complete.
            shutil.rmtree(self.tool_dir, ignore_errors=True)
            self._host([base_python(), "-m", "venv", str(self.tool_dir)], "create the mutmut tool venv")
            pip = [
                str(self.tool_dir / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
            ]
            self._host([*pip, f"mutmut=={MUTMUT_VERSION}"], f"install mutmut {MUTMUT_VERSION}")
            done.write_text(MUTMUT_VERSION + "\n")

    @staticmethod
    def _host(cmd: Sequence[str], what: str) -> None:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"could not {what}: {(proc.stdout + proc.stderr).strip()[-800:]}")

    def _site_packages(self, venv: Path) -> Path:
        return venv / "lib" / _PY / "site-packages"

    # -- MutationRunner ---------------------------------------------------------------------

    def prepare(self, repo: Path) -> None:
        """A venv in the tree: the package (editable, so tests see edits to it) with its test extras
        if it declares any (test, tests, testing), and pytest."""
        self.ensure_tool()
        repo = repo.resolve()
        venv = repo / VENV
        if (venv / ".prepared").is_file():
            return
        sources, tests = layout(repo)
        if not sources:
            raise RuntimeError(f"{repo}: no Python package or module found to mutate")
        if not tests:
            raise RuntimeError(
                f"{repo}: no tests found (tests/, test/, testing/, test*.py); the source must ship its tests"
            )
        shutil.rmtree(venv, ignore_errors=True)
        self._host([base_python(), "-m", "venv", str(venv)], f"create a venv in {repo}")
        pip_cache = moa_cache() / "pip"
        install = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        res = run(
            [*install, "pytest", "-e", ".[test,tests,testing]"],
            repo,
            writable=[pip_cache],
            network=True,
            env={"PIP_CACHE_DIR": str(pip_cache)},
            limits=Limits(timeout_s=900),
        )
        if not res.ok:
            raise RuntimeError(
                f"{repo}: pip install of the package and pytest failed: {res.output.strip()[-800:]}"
            )
        (self._site_packages(venv) / "zz-moa-mutmut.pth").write_text(
            str(self._site_packages(self.tool_dir)) + "\n"
        )
        (venv / ".prepared").write_text(json.dumps({"sources": sources, "tests": tests}))

    def _pytest(self, repo: Path, args: Sequence[str], timeout_s: float) -> Result:
        venv = repo.resolve() / VENV
        cmd = [
            str(venv / "bin" / "python"),
            "-m",
            "pytest",
            "-q",
            "-rfE",
            "-p",
            "no:cacheprovider",
            _NO_ADDOPTS,
            "--ignore=mutants",
            *args,
        ]
        return run(cmd, repo, env={"PYTHONDONTWRITEBYTECODE": "1"}, limits=Limits(timeout_s=timeout_s))

    def baseline(
        self, repo: Path, timeout_s: float, exclude_tests: Sequence[str] = (), only_tests: Sequence[str] = ()
    ) -> tuple[bool, str]:
        """The suite (or just `only_tests`, ids as pytest prints them) without `exclude_tests`."""
        tests = list(only_tests) or json.loads((repo / VENV / ".prepared").read_text())["tests"]
        res = self._pytest(repo, [*tests, *(a for t in exclude_tests for a in ("--deselect", t))], timeout_s)
        tail = res.output[-4000:]
        return res.ok, ("[timed out]\n" + tail if res.timed_out else tail)

    def failing_tests(self, output: str) -> list[str]:
        """Test ids pytest reported as failed or errored (from its -rfE short summary)."""
        return sorted(set(_FAILED_RE.findall(output)))

    def _write_config(self, repo: Path, exclude_tests: Sequence[str]) -> None:
        """mutmut reads [tool.mutmut] from pyproject.toml, else [mutmut] from setup.cfg."""
        meta = json.loads((repo / VENV / ".prepared").read_text())
        lines = ["[mutmut]", "source_paths=", *(f"    {s}" for s in meta["sources"])]
        lines += ["pytest_add_cli_args_test_selection=", *(f"    {t}" for t in meta["tests"])]
        lines += ["pytest_add_cli_args=", "    -p", "    no:cacheprovider", f"    {_NO_ADDOPTS}"]
        lines += [f"    --deselect={t}" for t in exclude_tests]
        lines += ["do_not_mutate=", "    */tests/*", "    */test_*.py", "    *conftest.py"]
        cfg = repo / "setup.cfg"
        text = cfg.read_text() if cfg.is_file() else ""
        text = re.sub(r"(?ms)^\[mutmut\]\n.*?(?=^\[|\Z)", "", text)  # ours replaces any previous one
        cfg.write_text(text.rstrip() + "\n\n" + "\n".join(lines) + "\n")

    def run(
        self,
        repo: Path,
        source: SourceRef,
        max_mutations: int | None,
        timeout_s: float,
        exclude_tests: Sequence[str] = (),
    ) -> list[MutationRecord]:
        """`mutmut run` on all mutants, or on `max_mutations` of them spread round-robin over the
        functions; resumable either way (mutmut keeps verdicts in mutants/*.meta)."""
        repo = repo.resolve()
        py = str(repo / VENV / "bin" / "python")
        self._write_config(repo, exclude_tests)
        names: list[str] = []
        picked: set[str] = set()
        if max_mutations is not None:
            listed = run(
                [py, "-W", "ignore", str(_EXPORT), "names"], repo, limits=Limits(timeout_s=timeout_s)
            )
            if not listed.ok:
                raise RuntimeError(
                    f"generating mutants failed on {source}: {_strip_spinner(listed.output)[-1500:]}"
                )
            rows = [json.loads(line) for line in listed.output.splitlines() if line.startswith("{")]
            chosen = spread(rows, max_mutations)
            picked = {str(r["name"]) for r in chosen}
            names = [str(r["name"]) for r in chosen if r["exit_code"] is None]
        if max_mutations is None or names:
            cli = "import sys; from mutmut.__main__ import cli; sys.argv[0] = 'mutmut'; sys.exit(cli())"
            cmd = [py, "-c", cli, "run", "--max-children", str(self.jobs), *names]
            res = run(cmd, repo, limits=Limits(timeout_s=timeout_s))
            if not res.ok:
                why = "timed out" if res.timed_out else f"exit {res.returncode}"
                raise RuntimeError(f"mutmut run {why} on {source}: {_strip_spinner(res.output)[-1500:]}")
        export = run(
            [py, "-W", "ignore", str(_EXPORT)], repo, limits=Limits(timeout_s=max(600.0, timeout_s / 4))
        )
        if not export.ok:
            raise RuntimeError(f"reading mutmut's results failed on {source}: {export.output[-1500:]}")
        records = []
        for line in export.output.splitlines():
            if not line.startswith("{"):
                continue
            row = json.loads(line)
            if picked and row["name"] not in picked:
                continue
            status = STATUS.get(row["status"])
            if status is None or "diff" not in row or not row["diff"]:
                continue
            records.append(
                MutationRecord(
                    language="python",
                    source=str(source),
                    version=source.version,
                    file=row["file"],
                    function=row["function"],
                    line=first_changed_line(row["diff"]),
                    operator=classify(row["diff"]),
                    diff=row["diff"],
                    status=status,
                    tool=f"mutmut {MUTMUT_VERSION}",
                    timings={"test_s": round(row["seconds"], 3)} if row.get("seconds") is not None else {},
                )
            )
        return records


def spread(rows: list[dict[str, object]], n: int) -> list[dict[str, object]]:
    """Up to `n` rows taken round-robin over their `function`, so a cap spreads over the code."""
    by_function: dict[object, list[dict[str, object]]] = {}
    for row in rows:
        by_function.setdefault(row["function"], []).append(row)
    queues = list(by_function.values())
    out: list[dict[str, object]] = []
    while len(out) < n and queues:
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
        queues = [q for q in queues if q]
    return out


def _strip_spinner(text: str) -> str:
    """mutmut redraws a spinner with carriage returns; keep the last frame of each line."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.splitlines())
