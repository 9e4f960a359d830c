"""Export mutmut 3's results as JSON lines, one per mutant (run by the TARGET repo's venv, cwd = repo).

`python mutmut_export.py only` exports the mutants named on stdin.
`python mutmut_export.py names` first generates the mutants (the first step of `mutmut run`, which
has no "generate only" command), so the runner can draw a subset from every mutant's row (its diff
says its bug class) and pass their names to `mutmut run NAME...`.

Why a script and not `mutmut show`: `show` prints a function-level diff and costs one process per
mutant; the stage needs a file-level unified diff (fixed -> buggy) for every mutant. This uses
mutmut's own readers (the same ones `mutmut apply` uses) to build each mutated file in memory, in
one process, without touching the source tree. It imports mutmut, so it never runs inside moa.
"""

# mutmut and libcst live in the tool venv, not in moa's: mypy cannot see them from here.
# mypy: disable-error-code="import-not-found,no-any-return"
from __future__ import annotations

import ast
import difflib
import functools
import hashlib
import json
import sys
from pathlib import Path

import libcst as cst
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import (
    read_functions_from_index,
    read_mutant_function,
    read_mutants_module,
)
from mutmut.stats import status_by_exit_code
from mutmut.utils.file_utils import walk_mutatable_files
from mutmut.utils.format_utils import orig_function_and_class_names_from_key


def _original(orig: cst.Module, function: str, cls: str | None) -> cst.FunctionDef | None:
    """The function `function` of class `cls` (module level when None). mutmut's own lookup
    ignores the class and finds a parent's method when a subclass overrides it by name."""
    body = orig.body
    if cls:
        owner = [n for n in body if isinstance(n, cst.ClassDef) and n.name.value == cls]
        body = owner[-1].body.body if owner else []
    found = [n for n in body if isinstance(n, cst.FunctionDef) and n.name.value == function]
    return found[-1] if found else None  # a later definition replaces an earlier one, as in Python


def function_starts(text: str) -> dict[tuple[str | None, str], int]:
    """0-based first line (first decorator) of every module-level function and method, by
    (class or None, name), from one `ast` parse of the file; a later definition wins, as in Python."""
    starts: dict[tuple[str | None, str], int] = {}
    for node in ast.parse(text).body:
        owner = node.name if isinstance(node, ast.ClassDef) else None
        for fn in node.body if isinstance(node, ast.ClassDef) else [node]:
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                starts[(owner, fn.name)] = min([fn.lineno] + [d.lineno for d in fn.decorator_list]) - 1
    return starts


@functools.cache
def _mutants_module(path: Path) -> cst.Module:
    """mutmut's trampolined copy of a file, parsed once: it holds every mutant of every function,
    so parsing it per mutant took minutes on a module with one long function."""
    return read_mutants_module(path)


def mutated_source(
    orig: cst.Module, text: str, starts: dict[tuple[str | None, str], int], path: Path, name: str
) -> str:
    """The file with mutant `name` applied: the changed lines spliced into that function's own
    block, found by class and name (fast: libcst's deep_replace walks the whole module per
    mutant); deep_replace of that same node when its text is not where `ast` says."""
    function, cls = orig_function_and_class_names_from_key(name)
    original = _original(orig, function, cls)
    if original is None:
        raise LookupError(f"{path}: function {cls + '.' if cls else ''}{function} of {name} not found")
    pair = read_functions_from_index(name, path)
    mutant = pair[1] if pair is not None else read_mutant_function(_mutants_module(path), name)
    mutant = mutant.with_changes(name=cst.Name(function), leading_lines=original.leading_lines)
    bare = original.with_changes(leading_lines=())
    old = cst.Module([bare]).code.splitlines(keepends=True)
    new = cst.Module([mutant.with_changes(leading_lines=())]).code.splitlines(keepends=True)
    lines = text.splitlines(keepends=True)
    start = starts.get((cls or None, function))
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())] if start is not None else ""
    window = lines[start : start + len(old)] if start is not None else []
    # Lines inside multi-line strings keep their own indentation in libcst's code: either form.
    if (
        start is None
        or len(window) != len(old)
        or not all(
            f in (indent + c, c) or not (f.strip() or c.strip()) for f, c in zip(window, old, strict=True)
        )
    ):
        return orig.deep_replace(original, mutant).code
    out = lines[:start]
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if op == "equal":
            out += window[i1:i2]
        else:
            pad = indent if window[min(i1, len(old) - 1)].startswith(indent) else ""
            out += [pad + x if x.strip() else x for x in new[j1:j2]]
    return "".join(out + lines[start + len(old) :])


def generate() -> None:
    from mutmut.__main__ import create_mutants, store_lines_covered_by_tests
    from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir, setup_source_paths

    Path("mutants").mkdir(exist_ok=True)
    copy_src_dir()
    copy_also_copy_files()
    setup_source_paths()
    store_lines_covered_by_tests()
    create_mutants(1)


def main(only: set[str] | None = None) -> None:
    """Every mutant's row, or those named in `only` (a drawn run: building every other mutant's
    diff again took ten minutes on toml's decoder)."""
    for path in walk_mutatable_files():
        data = SourceFileMutationData(path=path)
        data.load()
        if not data.exit_code_by_key:
            continue
        text = Path(path).read_text()
        orig = cst.parse_module(text)
        starts = function_starts(text)
        for name, code in data.exit_code_by_key.items():
            if only is not None and name not in only:
                continue
            function, cls = orig_function_and_class_names_from_key(name)
            row = {
                "name": name,
                "file": str(path),
                "function": f"{cls}.{function}" if cls else function,
                "exit_code": code,
                "status": status_by_exit_code[code],
                "seconds": data.durations_by_key.get(name),
            }
            try:
                buggy = mutated_source(orig, text, starts, Path(path), name)
            except Exception as exc:  # one unreadable mutant must not lose the others
                row["error"] = f"{type(exc).__name__}: {exc}"
            else:
                diff = difflib.unified_diff(
                    text.splitlines(keepends=True), buggy.splitlines(keepends=True), f"a/{path}", f"b/{path}"
                )
                row["diff"] = "".join(diff)
                # The runner re-applies the diff to the file and compares: byte for byte or dropped.
                row["sha256"] = hashlib.sha256(buggy.encode()).hexdigest()
            sys.stdout.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["names"]:
        generate()
    # `only`: the mutant names to export, one a line on stdin
    main(set(sys.stdin.read().split()) if sys.argv[1:] == ["only"] else None)
