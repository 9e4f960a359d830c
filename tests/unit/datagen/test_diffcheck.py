"""Diff checks against each language plugin's parser: a diff must apply exactly and stay inside
the function its record names."""

from __future__ import annotations

from pathlib import Path

import pytest

from moa.api.records import MutationRecord
from moa.datagen.diffcheck import DiffChecker
from moa.languages import registry
from moa.languages.base import enclosing
from moa.languages.tools import DiffError, apply_unified, changed_lines, file_diff, mutant_diff

# (language, file, source, function to mutate, its line to change, the line after, another function)
CASES = [
    (
        "go",
        "p.go",
        "package p\n\ntype T struct{ n int }\n\nfunc (t *T) Less(a int) bool {\n\treturn a < t.n\n}\n\n"
        "func Less(a, b int) bool {\n\treturn a < b\n}\n",
        "T.Less",
        "\treturn a < t.n\n",
        "\treturn a <= t.n\n",
        "Less",
    ),
    (
        "rust",
        "src/lib.rs",
        "pub struct T { n: i32 }\n\nimpl std::fmt::Display for T {\n    fn fmt(&self, f: &mut Formatter) -> Result {\n"
        '        write!(f, "{}", self.n + 1)\n    }\n}\n\nimpl T {\n    pub fn less(&self, a: i32) -> bool {\n'
        "        a < self.n\n    }\n}\n\npub fn less(a: i32, b: i32) -> bool {\n    a < b\n}\n",
        "T::less",
        "        a < self.n\n",
        "        a <= self.n\n",
        "less",
    ),
    (
        "typescript",
        "src/index.ts",
        "export class T {\n  n = 1;\n  less(a: number): boolean {\n    return a < this.n;\n  }\n}\n\n"
        "export const less = (a: number, b: number): boolean => {\n  return a < b;\n};\n",
        "T.less",
        "    return a < this.n;\n",
        "    return a <= this.n;\n",
        "less",
    ),
    (
        "python",
        "m.py",
        "class T:\n    def less(self, a):\n        return a < self.n\n\n\nclass U(T):\n    def less(self, a):\n"
        "        return a > self.n\n\n\ndef less(a, b):\n    return a < b\n",
        "U.less",
        "        return a > self.n\n",
        "        return a >= self.n\n",
        "T.less",
    ),
]


def _record(language: str, file: str, function: str, diff: str) -> MutationRecord:
    return MutationRecord(
        language=language, source="path:/x", version="", file=file, function=function,
        operator="x", diff=diff, status="caught",
    )  # fmt: skip


@pytest.mark.parametrize(("language", "file", "text", "function", "old", "new", "other"), CASES)
def test_diff_must_stay_in_the_named_function(
    tmp_path: Path, language: str, file: str, text: str, function: str, old: str, new: str, other: str
) -> None:
    plugin = registry.get(language)
    assert plugin.functions is not None
    (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / file).write_text(text)
    buggy = text.replace(old, new, 1)
    diff = mutant_diff(file, text, buggy)
    spans = plugin.functions(file, text)
    line = text[: text.index(old)].count("\n") + 1
    assert enclosing(spans, line) == function and changed_lines(diff) == [line]
    assert {function, other} <= {s.name for s in spans}

    check = DiffChecker(tmp_path, plugin.functions)
    assert check.problem(_record(language, file, function, diff)) is None
    # the same diff labelled with the other function of a similar name: touches the wrong one
    assert check.problem(_record(language, file, other, diff)) == "diff_outside_function"
    assert check.problem(_record(language, file, "nowhere", diff)) == "diff_function_unknown"
    stale = diff.replace(old.strip(), old.strip().replace("a", "b", 1), 1)
    assert check.problem(_record(language, file, function, stale)) == "diff_not_applying"
    assert check.problem(_record(language, "other" + file, function, diff)) == "diff_other_file"


def test_apply_unified_is_exact_and_round_trips() -> None:
    fixed, buggy = "a\nb\nc", "a\nB\nc"  # no newline at the end: the marker must survive
    diff = mutant_diff("f", fixed, buggy)
    assert apply_unified(fixed, diff) == buggy
    with pytest.raises(DiffError, match="differs"):
        apply_unified("a\nx\nc", diff)
    with pytest.raises(DiffError, match="no hunk"):
        apply_unified(fixed, "--- a/f\n+++ b/f\n")
    with pytest.raises(DiffError, match="does not change"):
        mutant_diff("f", fixed, fixed)
    # an insertion is placed after the line it follows
    assert changed_lines(file_diff("f", "x\ny\n", "x\nnew\ny\n")) == [1]
