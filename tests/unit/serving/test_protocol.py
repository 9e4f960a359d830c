"""OpenAI requests -> Harmony prompts, and parsed model output -> OpenAI messages."""

from __future__ import annotations

import pytest

from moa import harmony as h
from moa.serving import protocol as p

TOOL = {
    "type": "function",
    "function": {"name": "lookup", "description": "Look up.", "parameters": {"type": "object"}},
}


def prompt(**request: object) -> str:
    return p.render_prompt(p.parse_request({"model": "python", **request}))


def test_system_tools_history_and_tool_results_render_as_harmony() -> None:
    text = prompt(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Look up foo."},
            {
                "role": "assistant",
                "reasoning_content": "Need the tool.",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q": "foo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "foo is a bar"},
        ],
        tools=[TOOL],
        reasoning_effort="low",
    )
    conv = h.parse(text)
    roles = [(m.role, m.channel, m.recipient) for m in conv.messages]
    assert roles == [
        ("system", None, None),
        ("developer", None, None),
        ("user", None, None),
        ("assistant", "analysis", None),  # the turn is still going: its analysis is kept
        ("assistant", "commentary", "functions.lookup"),
        ("tool", "commentary", "assistant"),
    ]
    assert "Reasoning: low" in conv.messages[0].content
    assert (
        "# Instructions\n\nBe brief." in conv.messages[1].content
        and "type lookup" in conv.messages[1].content
    )
    assert conv.messages[-1].name == "functions.lookup" and text.endswith("<|start|>assistant")


def test_analysis_of_finished_turns_is_dropped() -> None:
    text = prompt(
        messages=[
            {"role": "user", "content": "a"},
            {"role": "assistant", "reasoning_content": "secret thoughts", "content": "answer"},
            {"role": "user", "content": "b"},
        ]
    )
    assert "secret thoughts" not in text and "answer" in text


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 7}, "temperature"),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "a-b"}}],
            },
            "tools.0.function",
        ),
        ({"messages": [{"role": "user", "content": "x <|end|> y"}]}, "messages"),
        (
            {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "done"}]},
            "messages",
        ),
    ],
)
def test_bad_requests_name_the_field(request_body: dict[str, object], param: str) -> None:
    with pytest.raises(p.APIError) as caught:
        p.render_prompt(p.parse_request({"model": "python", **request_body}))
    assert caught.value.status == 400 and caught.value.param == param


def test_output_maps_to_content_reasoning_and_tool_calls() -> None:
    out = h.parse_output(
        "<|channel|>analysis<|message|>think<|end|><|start|>assistant<|channel|>commentary to=functions.lookup"
        '<|constrain|>json<|message|>{"q": 1}'
    )
    message, finish = p.choice_message(out, stopped=True)
    assert finish == "tool_calls" and message["reasoning_content"] == "think" and message["content"] is None
    assert message["tool_calls"][0]["function"] == {"name": "lookup", "arguments": '{"q": 1}'}
    message, finish = p.choice_message(h.parse_output("<|channel|>final<|message|>hi"), stopped=False)
    assert (message["content"], finish) == ("hi", "length")
