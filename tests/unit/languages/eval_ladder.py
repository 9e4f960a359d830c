"""The evaluator checks every language runs on its real package (shared by test_*_evaluator.py).

A *case* is one mutation of a real registry package: `buggy` replaces `fixed` in one file
(the kind of change a mutation tool makes). The evaluator must then judge, on the buggy
state, the model's possible answers: the correct fix, a fix that does not compile, a fix
that still fails the tests, a correct fix that adds a lint finding, a malformed
apply_patch call and an edit whose context is not in the file.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from moa.api.records import EvalOutcome
from moa.harmony.patch import make_patch
from moa.languages.evaluation import evaluate_many, evaluate_patch
from moa.languages.evaluators import Runner, eval_root, get_evaluator


@dataclass(frozen=True)
class Case:
    language: str
    source: str  # the registry package, REGISTRY:NAME@VERSION
    file: str  # the mutated file, relative to the package root
    fixed: str  # a snippet of the original file ...
    buggy: str  # ... and what the mutation made of it
    compile_error: str  # answers, each replacing `buggy`
    failing: str
    lint_dirty: str
    caught_by: str  # a test that fails on the buggy state ...
    unrelated: str | None  # ... and one that passes on it (None: the suite has no other)


def buggy_state(case: Case, pristine: Path, prepare: Callable[[Path], None] | None = None) -> Path:
    """The package with the mutation applied, at a stable path under the eval cache so the
    toolchain's build caches stay warm between runs (built once, under a lock). `prepare`
    readies the pristine copy first, as the mutation runner does (dependencies, configs)."""
    how = getattr(prepare, "__qualname__", "")
    tag = hashlib.sha256(f"{case.file}\0{case.fixed}\0{case.buggy}\0{how}".encode()).hexdigest()[:10]
    dest = eval_root() / "fixtures" / f"{pristine.name}-{tag}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.with_name(dest.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not dest.is_dir():
            tmp = dest.with_name(dest.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(pristine, tmp, symlinks=True)
            if prepare:
                prepare(tmp)
            target = tmp / case.file
            text = target.read_text()
            assert text.count(case.fixed) == 1, f"{case.file}: the mutation site must be unique"
            target.write_text(text.replace(case.fixed, case.buggy))
            tmp.rename(dest)
    return dest


def answer(state: Path, case: Case, replacement: str) -> str:
    """The apply_patch text a model would send to turn the buggy snippet into `replacement`."""
    old = (state / case.file).read_text()
    return make_patch({case.file: (old, old.replace(case.buggy, replacement))})


def check_ladder(case: Case, state: Path, cache_dir: Path) -> dict[str, EvalOutcome]:
    """Evaluate every answer (in parallel), assert outcome and reward, then the cache."""
    patches = {
        "clean": answer(state, case, case.fixed),
        "compile_error": answer(state, case, case.compile_error),
        "tests_failed": answer(state, case, case.failing),
        "lint_warnings": answer(state, case, case.lint_dirty),
    }
    outcomes = dict(
        zip(
            patches,
            evaluate_many(
                case.language, [(state, p) for p in patches.values()], workers=2, cache_dir=cache_dir
            ),
            strict=True,
        )
    )
    rewards = {"clean": 1.0, "compile_error": -0.3, "tests_failed": 0.1, "lint_warnings": 0.7}
    for expected, outcome in outcomes.items():
        assert outcome.outcome == expected, f"{expected}: got {outcome.outcome}\n{outcome.output}"
        assert outcome.reward == rewards[expected]
        assert outcome.applied and not outcome.cached
    assert outcomes["clean"].builds and outcomes["clean"].tests_passed and outcomes["clean"].lint_clean
    assert outcomes["tests_failed"].builds and not outcomes["tests_failed"].tests_passed
    assert not outcomes["compile_error"].builds
    assert outcomes["lint_warnings"].lint_findings, "a lint-dirty fix names its new findings"

    malformed = evaluate_patch(
        case.language, state, "*** Begin Patch\n*** Update File: " + case.file + "\n+x\n", cache_dir=cache_dir
    )
    assert (malformed.outcome, malformed.reward, malformed.applied) == ("invalid_tool_call", -1.0, False)
    stale = make_patch({case.file: ("no such line\n", "still no such line\n")})
    missed = evaluate_patch(case.language, state, stale, cache_dir=cache_dir)
    assert (missed.outcome, missed.reward, missed.applied) == ("patch_failed", -1.0, False), missed.output

    # A hit is served from the cache, with the caller's reward table (timings: bench/eval_cache.py).
    again = evaluate_patch(
        case.language, state, patches["clean"], cache_dir=cache_dir, rewards={"clean": 0.5}
    )
    assert again.cached and again.outcome == "clean" and again.reward == 0.5
    return outcomes


def check_selection(case: Case, state: Path, work: Path) -> None:
    """The agent's run_tests with named tests: the catching test fails, an unrelated one passes."""
    shutil.copytree(state, work, symlinks=True)
    evaluator = get_evaluator(case.language)
    run = Runner(evaluator.sandbox(work), work, time.monotonic() + 300)  # type: ignore[attr-defined]
    caught = evaluator.test(work, run, tests=[case.caught_by])  # type: ignore[attr-defined]
    assert not caught.result.ok and caught.failed, caught.result.output
    if case.unrelated:
        unrelated = evaluator.test(work, run, tests=[case.unrelated])  # type: ignore[attr-defined]
        assert unrelated.result.ok and unrelated.total, unrelated.result.output


def check_undefined_names(case: Case, state: Path, hallucinated: str, name: str, work: Path) -> None:
    """The plugin's undefined-name check (the hallucinated-API metric) on the names an edit
    adds: the correct fix adds none, an edit calling `name` (defined nowhere) adds it."""
    from moa.languages import registry
    from moa.languages.base import NameChecker

    checker = get_evaluator(case.language)
    assert isinstance(checker, NameChecker)
    before = checker.undefined_names(state, [case.file], 600.0)
    added = {}
    for label, replacement in (("fixed", case.fixed), ("hallucinated", hallucinated)):
        copy = work / label
        hidden = registry.dependency_dirs() | registry.build_dirs()
        shutil.copytree(state, copy, symlinks=True, ignore=shutil.ignore_patterns(*hidden))
        for folder in registry.dependency_dirs():
            if (state / folder).is_dir():
                (copy / folder).symlink_to(state / folder, target_is_directory=True)
        text = (copy / case.file).read_text()
        (copy / case.file).write_text(text.replace(case.buggy, replacement))
        added[label] = checker.undefined_names(copy, [case.file], 600.0) - before
    assert added["fixed"] == set()
    assert added["hallucinated"] and all(f == case.file for f, _ in added["hallucinated"])
    assert any(name in message for _, message in added["hallucinated"]), added["hallucinated"]
