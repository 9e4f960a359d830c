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

import hashlib
import json
import re
import shutil
import sys
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

from moa.api.records import MutationRecord, MutationStatus, SourceRef
from moa.languages import python
from moa.languages.sampling import operator_swap_class
from moa.languages.sandbox import Limits, Result, run
from moa.languages.tools import (
    TIMEOUT_FACTOR,
    DiffError,
    RunnerBase,
    apply_unified,
    cache_dir,
    check_call,
    install_once,
)

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
_MUTMUT_CLI = "import sys; from mutmut.__main__ import cli; sys.argv[0] = 'mutmut'; sys.exit(cli())"
_PASSED_RE = re.compile(r"(\d+) passed")


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


def also_copy(repo: Path, sources: Sequence[str]) -> list[str]:
    """What mutmut must copy into its `mutants/` tree besides the code it mutates: every other
    top-level entry, since tests read data files by paths relative to the tree (toml's `test.toml`)
    and a root conftest.py is not a source; mutmut's own list covers only tests/, test/, test*.py
    and the config files."""
    mutated = {Path(s).parts[0] for s in sources}  # src/pkg/: all of src is mutmut's to copy
    skip = {"mutants", VENV, "__pycache__"}
    return sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in repo.iterdir()
        if p.name not in mutated and p.name not in skip and not p.name.startswith(".")
    )


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


# classify()'s operator -> bug class (moa.languages.sampling); comparisons are split below.
_CLASSES = {
    "arithmetic": "arithmetic",
    "boolean": "boolean",
    "bool": "boolean",
    "number": "constant",
    "string": "sentinel",  # mutmut's 'XXtextXX'
    "none": "stub",  # a value replaced by None
    "removal": "variable",  # an argument or operand dropped
    "name": "variable",
    "keyword": "other",
    "other": "other",
}


def bug_class(diff: str) -> str:
    """The bug class of a fixed -> buggy diff (its `classify` operator, mapped)."""
    kind, _, change = classify(diff).partition(":")
    if kind == "comparison":
        old, _, new = change.partition("->")
        return operator_swap_class(old, new) if old and new else "comparison"
    if kind == "assignment":
        return "variable" if "=" in (change.split("->")[0], change.split("->")[-1]) else "arithmetic"
    return _CLASSES.get(kind, "other")


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


@dataclass
class MutmutRunner(RunnerBase):
    """`MutationRunner` for Python: mutmut 3 + pytest."""

    tool: str = f"mutmut@{MUTMUT_VERSION}"

    def tool_path(self) -> Path:
        """The mutmut tool venv, built on first use. Only ever run as `venv/bin/python -m ...`
        (never through its scripts), so building it in a temporary folder and renaming it works."""

        def install(folder: Path) -> None:
            check_call([base_python(), "-m", "venv", str(folder)], folder, what="python -m venv")
            pip = [
                str(folder / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
            ]
            check_call(
                [*pip, f"mutmut=={MUTMUT_VERSION}"], folder, what=f"pip install mutmut {MUTMUT_VERSION}"
            )

        return install_once(
            f"mutmut-{MUTMUT_VERSION}-{_PY}", lambda d: (self._site_packages(d) / "mutmut").is_dir(), install
        )

    def _site_packages(self, venv: Path) -> Path:
        return venv / "lib" / _PY / "site-packages"

    # -- MutationRunner ---------------------------------------------------------------------

    def prepare(self, repo: Path) -> None:
        """A venv in the tree: the package (editable, so tests see edits to it) with its test extras
        if it declares any (test, tests, testing), and pytest."""
        tool = self.tool_path()
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
        check_call([base_python(), "-m", "venv", str(venv)], repo, what=f"create a venv in {repo}")
        pip_cache = cache_dir() / "pip"
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
        (self._site_packages(venv) / "zz-moa-mutmut.pth").write_text(str(self._site_packages(tool)) + "\n")
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
        return self.baseline_result(res, limit=4000)

    def failing_tests(self, output: str) -> list[str]:
        """Test ids pytest reported as failed or errored (from its -rfE short summary)."""
        return sorted({n for p in python.plugin.failing_test_patterns for n in p.findall(output)})

    def passed_tests(self, output: str) -> int | None:
        """How many tests passed, from pytest's last summary line (`12 passed, 2 deselected in 0.3s`)."""
        counts = _PASSED_RE.findall(output)
        return int(counts[-1]) if counts else None

    def raw_command(
        self, repo: Path, sample: int | None = None
    ) -> tuple[list[str], dict[str, str], tuple[int, ...]]:
        """`mutmut run` as a person runs it (bench/datagen_overhead.py): on every mutant, or on the
        `sample` mutants `run` draws for `max_mutations=sample` (listing them costs what it costs
        `run`), so both sides of the bench test the same ones; argv, environment, the exit codes
        of a finished run."""
        repo = repo.resolve()
        self._write_config(repo, [])
        names = [] if sample is None else [str(r["name"]) for r in self._drawn(repo, sample, 1800)]
        python = str(repo / VENV / "bin" / "python")
        return [python, "-c", _MUTMUT_CLI, "run", "--max-children", str(self.jobs), *names], {}, (0,)

    def _drawn(self, repo: Path, max_mutations: int | None, timeout_s: float) -> list[dict[str, Any]]:
        """mutmut's mutants (export.py's `names` rows), drawn by `self.draw`."""
        listed = run(
            [str(repo / VENV / "bin" / "python"), "-W", "ignore", str(_EXPORT), "names"],
            repo,
            limits=Limits(timeout_s=timeout_s),
        )
        if not listed.ok:
            raise RuntimeError(
                f"generating mutants failed in {repo}: {_strip_spinner(listed.output)[-1500:]}"
            )
        rows = [json.loads(line) for line in listed.output.splitlines() if line.startswith("{")]
        rows = [r for r in rows if r.get("diff")]  # the unreadable ones are counted after the run
        return self.draw(rows, max_mutations, lambda r: (r["file"], r["function"], bug_class(r["diff"])))

    def _write_config(self, repo: Path, exclude_tests: Sequence[str]) -> None:
        """mutmut reads [tool.mutmut] from pyproject.toml, else [mutmut] from setup.cfg."""
        meta = json.loads((repo / VENV / ".prepared").read_text())
        lines = ["[mutmut]", "source_paths=", *(f"    {s}" for s in meta["sources"])]
        lines += ["pytest_add_cli_args_test_selection=", *(f"    {t}" for t in meta["tests"])]
        lines += ["pytest_add_cli_args=", "    -p", "    no:cacheprovider", f"    {_NO_ADDOPTS}"]
        lines += [f"    --deselect={t}" for t in exclude_tests]
        # mutmut's own per-mutant limit is (estimated test time + 1 s) x this; its default is 15.
        lines += [f"timeout_multiplier={TIMEOUT_FACTOR}"]
        lines += ["do_not_mutate=", "    */tests/*", "    */test_*.py", "    *conftest.py"]
        lines += ["also_copy=", *(f"    {p}" for p in also_copy(repo, meta["sources"]))]
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
        """`mutmut run` on all mutants, or on `max_mutations` of them drawn by `self.draw`;
        resumable either way (mutmut keeps verdicts in mutants/*.meta)."""
        repo = repo.resolve()
        py = str(repo / VENV / "bin" / "python")
        self._write_config(repo, exclude_tests)
        names: list[str] = []
        picked: set[str] | None = None  # None: every mutant
        if max_mutations is not None or self.operator_classes is not None:
            chosen = self._drawn(repo, max_mutations, timeout_s)
            picked = {str(r["name"]) for r in chosen}
            names = [str(r["name"]) for r in chosen if r["exit_code"] is None]
        if picked is None or names:
            cmd = [py, "-c", _MUTMUT_CLI, "run", "--max-children", str(self.jobs), *names]
            res = run(cmd, repo, limits=Limits(timeout_s=timeout_s))
            if not res.ok:
                why = "timed out" if res.timed_out else f"exit {res.returncode}"
                raise RuntimeError(f"mutmut run {why} on {source}: {_strip_spinner(res.output)[-1500:]}")
        export = run(
            [py, "-W", "ignore", str(_EXPORT), *([] if picked is None else ["only"])],
            repo,
            limits=Limits(timeout_s=max(600.0, timeout_s / 4)),
            stdin=None if picked is None else "\n".join(sorted(picked)),
        )
        if not export.ok:
            raise RuntimeError(f"reading mutmut's results failed on {source}: {export.output[-1500:]}")
        records = []
        texts: dict[str, str] = {}
        for line in export.output.splitlines():
            if not line.startswith("{"):
                continue
            row = json.loads(line)
            status = STATUS.get(row["status"])
            if status is None:
                continue
            fixed = texts.setdefault(row["file"], (repo / row["file"]).read_text())
            if not row.get("diff"):
                self.rejected["mutant_unreadable" if row.get("error") else "diff_empty"] += 1
                continue
            if not _recreates(fixed, row["diff"], row["sha256"]):
                self.rejected["diff_roundtrip"] += 1
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
                    operator_class=bug_class(row["diff"]),
                    diff=row["diff"],
                    status=status,
                    tool=self.tool,
                    timings={"test_s": round(row["seconds"], 3)} if row.get("seconds") is not None else {},
                )
            )
        return records


def _recreates(fixed: str, diff: str, sha256: str) -> bool:
    """Whether `diff` applied to `fixed` gives the file mutmut's mutant is (by its hash)."""
    try:
        buggy = apply_unified(fixed, diff)
    except DiffError:
        return False
    return hashlib.sha256(buggy.encode()).hexdigest() == sha256


def _strip_spinner(text: str) -> str:
    """mutmut redraws a spinner with carriage returns; keep the last frame of each line."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.splitlines())
