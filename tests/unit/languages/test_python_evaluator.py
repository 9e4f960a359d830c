"""The Python evaluator on more-itertools (a real PyPI sdist with its pytest suite), prepared
by the Python mutation runner (a `.moa-venv` with the package installed editable) as for mutation."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_ladder import Case, buggy_state, check_ladder, check_selection, check_undefined_names

from moa.languages.python.mutation import MutmutRunner
from moa.languages.sources import fetch

# An arithmetic mutation of `ilen`, the kind mutmut makes; its tests catch it.
CASE = Case(
    language="python",
    source="pypi:more-itertools@10.2.0",
    file="more_itertools/more.py",
    fixed="    deque(zip(iterable, counter), maxlen=0)\n    return next(counter)\n",
    buggy="    deque(zip(iterable, counter), maxlen=0)\n    return next(counter) + 1\n",
    compile_error="    deque(zip(iterable, counter), maxlen=0)\n    return next(counter\n",
    failing="    deque(zip(iterable, counter), maxlen=0)\n    return next(counter) - 1\n",
    lint_dirty="    deque(zip(iterable, counter), maxlen=0)\n    unused = 1\n    return next(counter)\n",
    caught_by="tests/test_more.py::IlenTests",
    unrelated="tests/test_more.py::ChunkedTests",
)


@pytest.mark.slow
def test_python_evaluator_ladder(tmp_path: Path) -> None:
    state = buggy_state(CASE, fetch(CASE.source), prepare=MutmutRunner().prepare)
    outcomes = check_ladder(CASE, state, tmp_path / "outcomes")
    check_selection(CASE, state, tmp_path / "select")
    assert outcomes["clean"].tests_total and outcomes["clean"].tests_total > 600
    assert outcomes["tests_failed"].tests_failed
    assert any("F841" in f for f in outcomes["lint_warnings"].lint_findings)


@pytest.mark.slow
def test_python_undefined_names(tmp_path: Path) -> None:
    state = buggy_state(CASE, fetch(CASE.source), prepare=MutmutRunner().prepare)
    check_undefined_names(
        CASE,
        state,
        "    consume_all(zip(iterable, counter))\n    return next(counter)\n",
        "consume_all",
        tmp_path,
    )
