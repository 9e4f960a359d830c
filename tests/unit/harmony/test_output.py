"""Conformance of the tolerant model-output parser, written from the Harmony format guide and
the reference's documented streaming-parser behaviour (no reference code or test data).

Every text here is what a model generates after the prompt's open `<|start|>assistant`."""

from __future__ import annotations

import json

import pytest

from moa import harmony as h

CALL = h.tool_call("get_weather", {"location": "San Francisco"})
ARGS = CALL.content
THINK = "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant"


def only_call(text: str) -> h.Message:
    out = h.parse_output(text)
    calls = [m for m in out.messages if m.is_tool_call]
    assert len(calls) == 1, out
    return calls[0]


@pytest.mark.parametrize(
    ("shape", "text", "stop"),
    [
        (
            "as the guide writes it",
            f"<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{ARGS}<|call|>",
            "<|call|>",
        ),
        (
            "no space before <|constrain|>",
            f"<|channel|>commentary to=functions.get_weather<|constrain|>json<|message|>{ARGS}<|call|>",
            "<|call|>",
        ),
        (
            "missing <|message|>",
            f"<|channel|>commentary to=functions.get_weather <|constrain|>json{ARGS}<|call|>",
            "<|call|>",
        ),
        (
            "missing <|message|>, no space",
            f"<|channel|>commentary to=functions.get_weather<|constrain|>json{ARGS}<|call|>",
            "<|call|>",
        ),
        (
            "<|call|> stripped by the engine",
            f"<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{ARGS}",
            None,
        ),
        (
            "stray <|return|> after the call",
            f"<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{ARGS}<|call|><|return|>",
            "<|call|>",
        ),
    ],
)
def test_tool_call_shapes_parse_to_the_same_call(shape: str, text: str, stop: str | None) -> None:
    out = h.parse_output(THINK + text)
    assert [m.channel for m in out.messages] == ["analysis", "commentary"], shape
    call = out.messages[-1]
    assert (call.recipient, call.content_type, call.constrained) == ("functions.get_weather", "json", True)
    assert json.loads(call.content) == {"location": "San Francisco"}
    assert out.stop == stop
    parsed = h.parse_call(call, [h.Tool("get_weather", "Weather.", {"type": "object"})])
    assert parsed is not None and parsed.ok


def test_recipient_after_the_role_and_a_bare_content_type_are_kept_as_sampled() -> None:
    text = f" to=functions.get_weather<|channel|>commentary json<|message|>{ARGS}<|call|>"
    call = only_call(text)
    assert (call.recipient, call.content_type, call.constrained) == ("functions.get_weather", "json", False)
    # Re-rendered as written, not "improved" to <|constrain|>json.
    assert h.render_message(call, recipient_position="role") == "<|start|>assistant" + text


@pytest.mark.parametrize(
    ("text", "stop"),
    [
        ("<|channel|>final<|message|>Sunny, 20 degrees.<|return|>", "<|return|>"),
        ("<|channel|>final<|message|>Sunny, 20 degrees.", None),  # <|return|> stripped
        ("<|channel|>final<|message|>Sunny, 20 degrees.<|return|><|return|>", "<|return|>"),  # stray
        ("<|channel|>final<|message|>Sunny, 20 degrees.<|end|>", "<|end|>"),
        ("<|channel|>final Sunny, 20 degrees.<|return|>", "<|return|>"),  # missing <|message|>
    ],
)
def test_final_answer_shapes(text: str, stop: str | None) -> None:
    out = h.parse_output(THINK + text)
    assert out.messages == [h.analysis("Need the weather."), h.final("Sunny, 20 degrees.")]
    assert out.stop == stop


def test_a_missing_start_before_the_next_channel_opens_an_assistant_message() -> None:
    out = h.parse_output(
        "<|channel|>analysis<|message|>Think.<|end|><|channel|>final<|message|>Done.<|return|>"
    )
    assert out.messages == [h.analysis("Think."), h.final("Done.")]
    assert out.repairs  # said what it tolerated


def test_clean_output_reports_no_repairs_and_matches_the_strict_parser() -> None:
    text = (
        THINK + f"<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{ARGS}<|call|>"
    )
    out = h.parse_output(text)
    assert out.repairs == []
    assert tuple(out.messages) == h.parse_completion(text).messages


def test_the_strict_parser_still_refuses_what_training_data_must_not_contain() -> None:
    with pytest.raises(h.HarmonyError):
        h.parse_completion(
            f"<|channel|>commentary to=functions.get_weather<|constrain|>json<|message|>{ARGS}<|call|>"
        )
    with pytest.raises(h.HarmonyError):
        h.parse_completion("<|channel|>final<|message|>Sunny.")


def stream(text: str, cuts: list[int]) -> tuple[dict[int, str], dict[int, h.Message]]:
    parser = h.StreamParser()
    deltas: list[h.Delta] = []
    last = 0
    for cut in [*cuts, len(text)]:
        deltas += parser.feed(text[last:cut])
        last = cut
    deltas += parser.finish()
    texts: dict[int, str] = {}
    first: dict[int, h.Message] = {}
    for d in deltas:
        texts[d.index] = texts.get(d.index, "") + d.text
        first.setdefault(d.index, d.header)
    return texts, first


@pytest.mark.parametrize(
    "text",
    [
        THINK + f"<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{ARGS}<|call|>",
        THINK + f"<|channel|>commentary to=functions.get_weather<|constrain|>json{ARGS}",
        THINK + "<|channel|>final<|message|>Sunny <and> 20 <|degrees.",
    ],
)
def test_streaming_at_every_split_point_gives_what_the_whole_text_gives(text: str) -> None:
    whole = h.parse_output(text).messages
    for cut in range(len(text)):
        texts, first = stream(text, [cut])
        assert [texts[i] for i in sorted(texts)] == [m.content for m in whole], cut
        assert [first[i].recipient for i in sorted(first)] == [m.recipient for m in whole], cut
    # One character at a time (what a token-by-token decoder does at worst).
    texts, _ = stream(text, list(range(1, len(text))))
    assert [texts[i] for i in sorted(texts)] == [m.content for m in whole]


def test_a_tool_call_header_streams_before_its_arguments() -> None:
    parser = h.StreamParser()
    head = parser.feed("<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>")
    assert [(d.header.recipient, d.text) for d in head] == [("functions.get_weather", "")]
    body = parser.feed('{"location": ') + parser.feed('"SF"}<|call|>')
    assert "".join(d.text for d in body) == '{"location": "SF"}'


# --- rendering a history the way the inference stack does ------------------------------

HISTORY = [
    h.system_message(),
    h.user("Weather in SF?"),
    h.analysis("Need the weather tool."),
    CALL,
    h.tool_result("get_weather", '{"sunny": true}'),
    h.analysis("It is sunny."),
    h.final("Sunny."),
    h.user("And tomorrow?"),
]


def test_drop_analysis_leaves_out_the_chain_of_thought_of_finished_turns() -> None:
    kept = h.render(h.Conversation(HISTORY), "completion")
    dropped = h.render(h.Conversation(HISTORY), "completion", drop_analysis=True)
    assert kept.count("<|channel|>analysis") == 2
    assert dropped.count("<|channel|>analysis") == 0
    assert dropped == h.render(h.Conversation([m for m in HISTORY if m.channel != "analysis"]), "completion")


def test_drop_analysis_keeps_the_analysis_of_the_turn_in_progress() -> None:
    ongoing = [*HISTORY, h.analysis("Need the forecast."), CALL, h.tool_result("get_weather", "{}")]
    text = h.render(h.Conversation(ongoing), "completion", drop_analysis=True)
    assert text.count("<|channel|>analysis") == 1 and "Need the forecast." in text


def test_recipient_position_option() -> None:
    assert h.render_message(CALL, recipient_position="role").startswith(
        "<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json"
    )
    assert h.parse(h.render_message(CALL, recipient_position="role")).messages == (CALL,)


def test_system_message_defaults_to_medium_effort_and_lists_the_channels() -> None:
    text = h.system_message().content
    assert "Reasoning: medium" in text
    assert "# Valid channels: analysis, commentary, final." in text
    assert "# Valid channels: analysis, final." in h.system_message(channels=("analysis", "final")).content
    assert "Valid channels" not in h.system_message(channels=()).content
