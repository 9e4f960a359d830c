"""Ranking candidate patches into preference pairs: fixed expectations on real patches (the
toolz `frequencies` bug, judged by the real Python evaluator) and on idioms per language."""

from __future__ import annotations

import pytest
from python_mutations import records

from moa.agent.ranking import pairs, patch_stats, rank
from moa.agent.workspace import RepoState, Workspace
from moa.api.records import EvalOutcome
from moa.harmony.patch import make_patch


def outcome(kind: str) -> EvalOutcome:
    rewards = {
        "clean": 1.0,
        "lint_warnings": 0.7,
        "tests_failed": 0.1,
        "compile_error": -0.3,
        "patch_failed": -1.0,
        "invalid_tool_call": -1.0,
    }
    return EvalOutcome(outcome=kind, reward=rewards[kind])  # type: ignore[arg-type]


def update(path: str, old: str, new: str) -> str:
    return make_patch({path: (old, new)})


def test_idioms_per_language() -> None:
    rust = update(
        "src/lib.rs", "fn f() {}\n", 'fn f() {\n    let x = g().unwrap();\n    h().expect("h");\n}\n'
    )
    py = update("m.py", "x = 1\n", "def f(a):\n    return a\n\n\ndef g(a: int) -> int:\n    return a\n")
    ts = update("a.ts", "let a = 1;\n", "let a: any = 1;\nconst b = c as any;\n")
    go = update(
        "a.go", "package a\n", 'package a\n\nfunc f() error {\n\treturn fmt.Errorf("read: %v", err)\n}\n'
    )
    go_ok = update(
        "a.go", "package a\n", 'package a\n\nfunc f() error {\n\treturn fmt.Errorf("read: %w", err)\n}\n'
    )
    found = {
        name: patch_stats(p).idiom_violations
        for name, p in [("rust", rust), ("py", py), ("ts", ts), ("go", go), ("go_ok", go_ok)]
    }  # type: ignore[union-attr]
    assert found["rust"] == (
        "src/lib.rs: unwrap() instead of ? / Result",
        "src/lib.rs: expect() instead of ? / Result",
    )
    assert found["py"] == ("m.py: function without a return type hint",)
    assert (
        len(found["ts"]) == 2 and found["go"] == ("a.go: error not wrapped with %w",) and found["go_ok"] == ()
    )
    assert patch_stats("not a patch") is None


def test_hard_gates_first_then_idioms_then_files_then_size() -> None:
    base = "def f(a: int) -> int:\n    return a + 1\n"
    small = update("m.py", base, base.replace("a + 1", "a - 1"))
    bigger = update(
        "m.py", base, base.replace("a + 1", "a - 1") + "\n\ndef g(b: int) -> int:\n    return b\n"
    )
    untyped = update("m.py", base, base.replace("a + 1", "a - 1") + "\n\ndef g(b):\n    return b\n")
    two_files = small.replace("*** End Patch", "*** Add File: n.py\n+X = 1\n*** End Patch")
    cands = [untyped, "garbage", bigger, small, two_files, small]
    outs = [
        outcome("clean"),
        outcome("invalid_tool_call"),
        outcome("clean"),
        outcome("tests_failed"),
        outcome("clean"),
        outcome("clean"),
    ]
    ranked = rank(cands, outs)
    assert [(r.index, r.rank) for r in ranked] == [(5, 0), (2, 1), (4, 2), (0, 3), (3, 4), (1, 5)]
    got = pairs(cands, outs, max_pairs=3)
    assert [(p.chosen, p.rejected) for p in got] == [(5, 1), (2, 1), (4, 1)]
    assert got[0].reason == "clean over invalid_tool_call"
    everything = pairs(cands, outs, max_pairs=100)
    chosen_rejected = [(p.chosen, p.rejected) for p in everything]
    assert (2, 3) in chosen_rejected and (3, 1) in chosen_rejected and (5, 3) not in chosen_rejected
    assert all(cands[p.chosen] != cands[p.rejected] for p in everything)  # identical texts never pair
    soft = {(p.chosen, p.rejected): p.reason for p in everything}
    assert soft[(2, 0)].startswith("fewer idiom violations") and soft[(4, 0)].startswith(
        "fewer idiom violations"
    )
    assert soft[(5, 4)] == "fewer files touched (1 vs 2)" and soft[(5, 2)].startswith("smaller diff")


def test_broken_candidates_do_not_pair_on_taste() -> None:
    a = update("m.py", "x = 1\n", "x = 2\n")
    b = update("m.py", "x = 1\n", "x = 2\ny = 3\n")
    assert pairs([a, b], [outcome("tests_failed"), outcome("tests_failed")]) == []
    assert [
        (p.chosen, p.rejected) for p in pairs([a, b], [outcome("lint_warnings"), outcome("lint_warnings")])
    ] == [(0, 1)]
    with pytest.raises(ValueError, match="2 candidates but 1 outcomes"):
        rank([a, b], [outcome("clean")])


@pytest.mark.slow
def test_real_candidates_judged_by_the_python_evaluator() -> None:
    from moa.languages.evaluation import evaluate_patch

    record = next(r for r in records() if r.function == "frequencies")
    with Workspace.create(RepoState("python", record.source, record.diff)) as ws:
        buggy = (ws.root / record.file).read_text()
        right = update(record.file, buggy, buggy.replace("d[item] += 2", "d[item] += 1"))
        wrong = update(record.file, buggy, buggy.replace("d[item] += 2", "d[item] += 0"))
        broken = update(record.file, buggy, buggy.replace("d[item] += 2", "d[item] += "))
        stale = update(
            record.file, buggy.replace("d[item] += 2", "d[item] -= 2"), buggy
        )  # context not in the file
        cands = [wrong, stale, right, broken]
        outs = [evaluate_patch("python", ws.root, c, timeout_s=300) for c in cands]
    assert [o.outcome for o in outs][:2] == ["tests_failed", "patch_failed"]
    assert outs[2].tests_passed and outs[3].outcome == "compile_error"
    assert [r.index for r in rank(cands, outs)] == [2, 0, 3, 1]
    assert [(p.chosen, p.rejected) for p in pairs(cands, outs)] == [(2, 1), (2, 3), (0, 1), (2, 0)]
