"""The structural rules of an agent trajectory, one broken rule at a time."""

from __future__ import annotations

from dataclasses import replace

import pytest

from moa import harmony as h


def trajectory() -> list[h.Message]:
    return [
        h.system_message(current_date="2026-01-01"),
        h.developer_message("Fix the failing test.", h.AGENT_TOOLS),
        h.user("cargo test fails in src/lib.rs"),
        h.analysis("Run the tests first."),
        h.tool_call("run_tests", {}),
        h.tool_result("run_tests", "test add ... FAILED"),
        h.tool_call("read_file", {"path": "src/lib.rs", "start_line": 1}),
        h.tool_result("read_file", "1: fn add(a: i32, b: i32) -> i32 { a - b }"),
        h.tool_call("apply_patch", {"patch": "*** Begin Patch\n*** End Patch\n"}),
        h.tool_result("apply_patch", "Success."),
        h.final("Fixed: add used subtraction."),
    ]


def rules(messages: list[h.Message], mode: h.Mode = "training") -> list[str]:
    return [p.rule for p in h.validate(h.Conversation(messages, mode))]


def test_a_good_trajectory_has_no_problems_and_survives_text() -> None:
    conversation = h.Conversation(trajectory(), "training")
    assert h.validate(conversation) == []
    assert h.check_text(h.render(conversation)) == []


@pytest.mark.parametrize(
    ("index", "message", "rule"),
    [
        (3, h.Message("assistant", "thinking"), "channel-required"),
        (3, h.Message("assistant", "x", channel="thoughts"), "channel-unknown"),
        (4, replace(h.tool_call("run_tests", {}), channel="analysis"), "call-channel"),
        (4, replace(h.tool_call("run_tests", {}), content_type=None), "call-format"),
        (4, h.tool_call("rm_rf", {}), "call-unknown"),
        (6, h.tool_call("read_file", {"path": 3}), "call-arguments"),
        (6, h.tool_call("read_file", {}), "call-arguments"),
        (6, h.tool_call("read_file", {"path": "a", "mode": "rw"}), "call-arguments"),
        (6, replace(h.tool_call("read_file", {"path": "a"}), content="{not json"), "call-arguments"),
        (5, h.tool_result("read_file", "out"), "result-mismatch"),
        (2, h.Message("user", "x", channel="final"), "header"),
        (2, h.user("ignore <|endoftext|> this"), "special-token"),
    ],
)
def test_each_rule(index: int, message: h.Message, rule: str) -> None:
    messages = trajectory()
    messages[index] = message
    assert rule in rules(messages)


def test_order_and_ending_rules() -> None:
    t = trajectory()
    assert "system-first" in rules(t[1:])
    assert "developer-second" in rules([t[0], t[2], t[1], *t[3:]])
    assert "user-first" in rules([t[0], t[1], t[3], t[2], *t[4:]])
    assert "result-orphan" in rules([*t[:4], t[5], *t[6:]])
    assert "unanswered-call" in rules([*t[:5], *t[6:]])
    assert "ending" in rules(t[:-1])  # ends on a tool result
    assert "ending" in rules(t[:5])  # ends on a call
    assert rules(t[:6], "completion") == []  # a prompt may stop anywhere but on an open call
    assert "ending" in rules(t[:5], "completion")
    assert "call-undeclared" in rules([t[0], h.developer_message("x", [h.AGENT_TOOLS[0]]), *t[2:]])
    assert "system-functions" in rules([h.system_message(function_tools=False), *t[1:]])
    assert h.validate(h.Conversation(())) == [h.Problem("empty", "the conversation has no messages")]


def test_check_text_reports_syntax_with_the_position() -> None:
    [problem] = h.check_text("<|start|>user<|message|>hi")
    assert problem.rule == "syntax"
    assert "line 1, column 27" in problem.message
