"""The Python runner's normalisation of mutmut 3's real output, on a real PyPI package.

inflection 0.5.1: one module, no dependencies, ~450 tests in about a second, and its sdist ships them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from python_mutations import local_package

from moa.api.records import SourceRef
from moa.datagen.diffcheck import DiffChecker
from moa.languages.python.functions import functions
from moa.languages.python.mutation import (
    VENV,
    MutmutRunner,
    also_copy,
    bug_class,
    classify,
    first_changed_line,
    layout,
)
from moa.languages.sandbox import run
from moa.languages.sources import fetch
from moa.languages.tools import apply_unified, changed_lines

SOURCE = SourceRef.parse("pypi:inflection@0.5.1")
# What `classify` may answer before its ':' (the operator class the caps count).
OPERATOR_CLASSES = {"none", "boolean", "removal", "string", "number", "bool", "keyword", "arithmetic"}
OPERATOR_CLASSES |= {"comparison", "assignment", "name", "other"}


def _diff(old: str, new: str, line: int = 10) -> str:
    return (
        f"--- a/m.py\n+++ b/m.py\n@@ -{line},3 +{line},3 @@\n def f(x):\n-    {old}\n+    {new}\n     pass\n"
    )


@pytest.mark.parametrize(
    ("old", "new", "operator"),
    [
        ("return a + b", "return a - b", "arithmetic:+->-"),
        ("if x < lo:", "if x <= lo:", "comparison:<-><="),
        ("return x and y", "return x or y", "boolean:and->or"),
        ("s = 'abc'", "s = 'XXabcXX'", "string"),
        ("n = 1", "n = 2", "number:1->2"),
        ("v = compute(x)", "v = None", "none"),
        ("f(a, b)", "f(a, )", "removal"),
        ("ok = True", "ok = False", "bool:True->False"),
        ("x += 1", "x -= 1", "assignment:+=->-="),
        ("return x is None", "return x is not None", "boolean:->not"),
        ("return not x", "return x", "boolean:not->"),
        ("break", "continue", "keyword:break->continue"),
        ("y = x.upper()", "y = x.lower()", "name:upper->lower"),
    ],
)
def test_operator_is_derived_from_the_diff(old: str, new: str, operator: str) -> None:
    assert classify(_diff(old, new)) == operator


def test_first_changed_line_and_layout(tmp_path: Path) -> None:
    assert first_changed_line(_diff("a", "b", line=40)) == 41
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "__init__.py").write_text("")
    (tmp_path / "tests").mkdir()
    (tmp_path / "setup.py").write_text("")
    assert layout(tmp_path) == (["src/pkg/"], ["tests"])


def test_also_copy_is_every_top_level_entry_but_the_mutated_code(tmp_path: Path) -> None:
    for rel in ("src/pkg/__init__.py", "tests/test_a.py", "conftest.py", "data.toml", "fixtures/x.json"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    for rel in ("mutants", VENV, ".git", "__pycache__"):
        (tmp_path / rel).mkdir()
    assert also_copy(tmp_path, ["src/pkg/"]) == ["conftest.py", "data.toml", "fixtures/", "tests/"]


def test_bug_classes_of_python_operators() -> None:
    assert bug_class(_diff("if x < lo:", "if x <= lo:")) == "boundary"
    assert bug_class(_diff("if x == lo:", "if x != lo:")) == "comparison"
    assert bug_class(_diff("s = 'abc'", "s = 'XXabcXX'")) == "sentinel"
    assert bug_class(_diff("v = compute(x)", "v = None")) == "stub"
    assert bug_class(_diff("return a + b", "return a - b")) == "arithmetic"
    assert bug_class(_diff("y = x.upper()", "y = x.lower()")) == "variable"


@pytest.mark.slow
def test_mutmut_records_match_mutmut_show(tmp_path: Path) -> None:
    repo = tmp_path / "inflection"
    shutil.copytree(fetch(SOURCE), repo)
    runner = MutmutRunner()
    runner.prepare(repo)
    assert runner.baseline(repo, 300)[0]
    records = runner.run(repo, SOURCE, 12, 900)

    assert len(records) == 12
    assert {r.status for r in records} <= {"caught", "missed", "timeout", "unviable"}
    assert "caught" in {r.status for r in records}
    assert len({r.function for r in records}) >= 6  # spread over functions, not the first 12 of one
    text = (repo / "inflection" / "__init__.py").read_text()
    for rec in records:
        assert rec.file == "inflection/__init__.py" and rec.tool == "mutmut@3.8.1"
        assert f"def {rec.function.split('.')[-1]}(" in text
        assert rec.operator and rec.line is not None
        # the file-level diff applies to the pristine tree (it is fixed -> buggy)...
        check = subprocess.run(
            ["git", "apply", "--check", "-"], cwd=repo, input=rec.diff, text=True, capture_output=True
        )
        assert check.returncode == 0, (rec.diff, check.stderr)

    # ...and changes exactly the lines `mutmut show` reports for the same mutant.
    results = [
        line.split(":") for line in _mutmut(repo, "results", "--all=true").splitlines() if "__mutmut_" in line
    ]
    names = [name.strip() for name, status in results if status.strip() != "not checked"]
    assert len(names) == 12
    for name in names[:3]:
        shown = _mutmut(repo, "show", name)
        rec = next(r for r in records if _changed(r.diff) == _changed(shown))
        assert rec.function == name.split("x_", 1)[-1].rsplit("__mutmut_", 1)[0]


def _changed(diff: str) -> list[str]:
    return [
        ln.strip()
        for ln in diff.splitlines()
        if ln[:1] in "+-" and ln[:3] not in ("+++", "---") and ln[1:].strip()
    ]


def _mutmut(repo: Path, *args: str) -> str:
    cli = "import sys; from mutmut.__main__ import cli; sys.argv[0] = 'mutmut'; sys.exit(cli())"
    res = run([str(repo / VENV / "bin" / "python"), "-W", "ignore", "-c", cli, *args], repo)
    assert res.ok, res.output
    return res.output


# A subclass overriding its parent's methods by the same names: mutmut's own lookup finds the
# parent's method first, which once gave diffs that replaced the parent's body with the child's.
SHAPES = '''"""Shapes."""


class Shape:
    """A shape."""

    def area(self, scale):
        """The area of the shape, scaled: never negative."""
        if scale < 0:
            return 0
        return self.base() * scale

    def base(self):
        return 1


class Square(Shape):
    """A square, which is a shape."""

    def __init__(self, side):
        self.side = side

    def area(self, scale):
        """The area of the square, scaled: the side times itself."""
        if scale <= 0:
            return 0
        return self.side * self.side * scale

    def base(self):
        return self.side + 1
'''
SHAPES_TESTS = """from shapes import Shape, Square


def test_shape():
    assert Shape().area(3) == 3
    assert Shape().area(-1) == 0
    assert Shape().base() == 1


def test_square():
    assert Square(2).area(3) == 12
    assert Square(2).area(0) == 0
    assert Square(2).base() == 3
"""


@pytest.mark.slow
def test_subclass_method_of_the_same_name_gets_its_own_diff(tmp_path: Path) -> None:
    files = {"shapes/__init__.py": SHAPES, "tests/test_shapes.py": SHAPES_TESTS}
    repo = local_package(tmp_path / "shapes", "shapes", files)
    runner = MutmutRunner(jobs=1)
    runner.prepare(repo)
    assert runner.baseline(repo, 300)[0]
    records = runner.run(repo, SourceRef.parse(f"path:{repo}"), None, 900)

    spans = {s.name: s for s in functions("shapes/__init__.py", SHAPES)}
    by_function = {r.function for r in records}
    assert {"Square.area", "Shape.area", "Square.base"} <= by_function, by_function
    checker = DiffChecker(repo, functions)
    for rec in records:
        assert checker.problem(rec) is None, (rec.function, rec.diff)
        span = spans[rec.function or ""]
        assert all(span.start <= n <= span.end for n in changed_lines(rec.diff)), (rec.function, rec.diff)
        buggy = apply_unified(SHAPES, rec.diff)
        assert buggy.count("def area(") == 2 and "the side times itself" in buggy  # nothing pasted over
        # The label says what changed in code, never a piece of a docstring.
        assert rec.operator.split(":")[0] in OPERATOR_CLASSES, rec.operator
        assert "area of" not in rec.operator and "shape" not in rec.operator.lower()
    child = [r for r in records if r.function == "Square.area"]
    assert any(r.operator.startswith("comparison:<=") for r in child), [r.operator for r in child]
    assert runner.rejected == {} or sum(runner.rejected.values()) < len(records) / 10, runner.rejected


# toml 0.10.2's test_paths reads `test.toml` relative to the tree; mutmut runs tests in its own
# copy (`mutants/`) that once lacked every such file, and `mutmut run` failed on the package.
PARSE = """def parse(text):
    key, _, value = text.partition("=")
    if len(key) > 0:
        return {key.strip(): value.strip()}
    return {}
"""
PARSE_TESTS = """from pathlib import Path

from kv import parse


def test_file_next_to_the_tree():
    assert parse(Path("sample.kv").read_text()) == {"a": "1"}
    assert parse("=") == {}
"""


@pytest.mark.slow
def test_tests_reading_data_files_by_relative_path_run_under_mutmut(tmp_path: Path) -> None:
    files = {"kv/__init__.py": PARSE, "tests/test_kv.py": PARSE_TESTS, "sample.kv": "a = 1\n"}
    repo = local_package(tmp_path / "kv", "kv", files)
    runner = MutmutRunner(jobs=1)
    runner.prepare(repo)
    assert runner.baseline(repo, 300)[0]
    records = runner.run(repo, SourceRef.parse(f"path:{repo}"), 3, 600)
    assert records and all(r.file == "kv/__init__.py" for r in records)
    assert any(r.status == "caught" for r in records), [(r.operator, r.status) for r in records]
