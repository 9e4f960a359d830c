"""Property tests: render and parse are inverses, and the parser fails only with HarmonyError."""

from __future__ import annotations

import contextlib
import re
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moa import harmony as h
from moa.harmony import tokens as T

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Header words: one run of visible characters, never '<|' (what render accepts). A small
# alphabet full of the characters the grammar cares about finds more edge cases than
# arbitrary unicode, and is fast to generate.
word = st.text(st.sampled_from("ab.:_-=|<>{}é0 "[:-1]), min_size=1, max_size=8).filter(
    lambda w: "<|" not in w
)
# Content: any text, with the fragments most likely to confuse a parser mixed in.
tricky = st.sampled_from(["<|", "|>", "<|end", "end|>", "<|endoftext|>", "\n", " to=", "<|start", "json"])
content = (
    st.lists(st.one_of(st.text(max_size=10), tricky), max_size=4)
    .map("".join)
    .filter(lambda s: not T.STRUCTURAL_RE.search(s))
)
channel = st.one_of(st.none(), st.sampled_from(T.CHANNELS), word)


@st.composite
def messages(draw: st.DrawFn) -> h.Message:
    role = draw(st.sampled_from(T.ROLES))
    if role == "tool":
        name = draw(word.filter(lambda w: w.partition(":")[0] not in T.ROLES))
    else:
        name = draw(st.one_of(st.none(), word))
    return h.Message(
        role,
        draw(content),
        channel=draw(channel),
        recipient=draw(st.one_of(st.none(), word)),
        content_type=draw(st.one_of(st.none(), word)),
        name=name,
    )


conversations = st.builds(
    h.Conversation,
    st.lists(messages(), max_size=6).map(tuple),
    st.sampled_from(["history", "training", "completion"]),
)


def expected_mode(c: h.Conversation) -> str:
    if c.mode == "training":
        last = c.messages[-1] if c.messages else None
        ends_final = (
            last is not None
            and last.role == "assistant"
            and last.channel == "final"
            and last.recipient is None
        )
        return "training" if ends_final else "history"
    return c.mode


@settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations)
def test_render_then_parse_gives_the_conversation_back(c: h.Conversation) -> None:
    text = h.render(c)
    parsed = h.parse(text)
    assert parsed.messages == c.messages
    assert parsed.mode == expected_mode(c)
    assert h.render(parsed) == text
    # What a model generates after the open `<|start|>assistant` reads back the same way.
    assistant = tuple(m for m in c.messages if m.role == "assistant")
    if assistant:
        generated = h.render(h.Conversation(assistant))[len(T.START + "assistant") :]
        assert h.parse_completion(generated).messages == assistant
    # validate reports, never raises.
    assert all(isinstance(p, h.Problem) and p.rule for p in h.validate(c))


def _mutate(data: st.DataObject, text: str) -> str:
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 12)))
        insert = data.draw(
            st.one_of(
                st.just(""),
                st.sampled_from([*T.STRUCTURAL, " ", "to=x", ":", "assistant"]),
                st.text(max_size=3),
            )
        )
        text = text[:i] + insert + text[j:]
    return text


@FAST
@given(st.data(), conversations)
def test_mutated_texts_parse_or_fail_with_a_position(data: st.DataObject, c: h.Conversation) -> None:
    text = _mutate(data, h.render(c))
    try:
        parsed = h.parse(text)
    except h.HarmonyError as exc:
        assert exc.offset is not None and 0 <= exc.offset <= len(text)
        assert exc.line == text.count("\n", 0, exc.offset) + 1
        return
    # Whatever parses renders, and reads back the same (canonical header order aside).
    assert h.parse(h.render(parsed)) == parsed


@settings(max_examples=1000, deadline=None)
@given(st.text())
def test_arbitrary_text_only_raises_harmony_error(text: str) -> None:
    for parse in (h.parse, h.parse_completion):
        with contextlib.suppress(h.HarmonyError):
            parse(text)


def test_error_positions_name_line_column_and_what_was_expected() -> None:
    text = "<|start|>user<|message|>hi<|end|>\n<|start|>assistant<|channel|>final<|message|>ok<|end|>"
    try:
        h.parse(text)
    except h.HarmonyError as exc:
        assert (exc.offset, exc.line, exc.column) == (33, 1, 34)
        assert exc.expected == "<|start|>"
        assert "between messages" in str(exc)
    else:
        raise AssertionError("a newline between messages must be refused")
    bad = "<|start|>assistant<|channel|>final<|message|>ok\nmore<|start|>user<|message|>x<|end|>"
    try:
        h.parse(bad)
    except h.HarmonyError as exc:
        assert (exc.line, exc.column) == (2, 5)
        assert exc.expected is not None and "<|end|>" in exc.expected
    else:
        raise AssertionError("a message must be terminated")


def test_terminators_are_checked() -> None:
    call = "<|start|>assistant<|channel|>commentary to=functions.read_file <|constrain|>json<|message|>{}"
    assert h.parse(call + "<|call|>").messages[0].function == "read_file"
    for wrong, message in (
        (call + "<|end|>", "must end with <|call|>"),
        ("<|start|>user<|message|>x<|call|>", "<|call|> ends only"),
        ("<|start|>assistant<|channel|>analysis<|message|>x<|return|>", "final-channel"),
        (
            "<|start|>assistant<|channel|>final<|message|>x<|return|><|start|>user<|message|>y<|end|>",
            "last message",
        ),
    ):
        try:
            h.parse(wrong)
        except h.HarmonyError as exc:
            assert message in str(exc), str(exc)
        else:
            raise AssertionError(f"accepted {wrong!r}")


def test_header_positions_of_the_recipient_are_both_read() -> None:
    # The library renders `assistant to=X<|channel|>commentary`; the model writes the channel first.
    a = h.parse(
        "<|start|>assistant to=functions.search<|channel|>commentary <|constrain|>json<|message|>{}<|call|>"
    )
    b = h.parse(
        "<|start|>assistant<|channel|>commentary to=functions.search <|constrain|>json<|message|>{}<|call|>"
    )
    assert a == b
    # Hugging Face's chat template writes the content type without <|constrain|>: read the
    # same, and kept as written so that re-rendering reproduces the text.
    text = "<|start|>assistant to=functions.search<|channel|>commentary json<|message|>{}<|call|>"
    (c,) = h.parse(text).messages
    assert replace(c, constrained=True) == a.messages[0] and not c.constrained
    assert h.render_message(c, recipient_position="role") == text


def test_render_refuses_what_could_not_be_read_back() -> None:
    for message in (
        h.user("a <|end|> b"),
        h.Message("assistant", "x", channel="final answer"),
        h.Message("tool", "x"),
    ):
        try:
            h.render(h.Conversation([message]))
        except h.HarmonyError as exc:
            assert exc.index == 0
        else:
            raise AssertionError(f"rendered {message}")


def test_the_guide_example_renders_exactly() -> None:
    """The system message and tool call of the Harmony guide (docs/format.md), byte for byte."""
    system = h.system_message(reasoning="high", current_date="2025-06-28")
    text = h.render(h.Conversation([system, h.user("What is the weather like in SF?")]), "completion")
    assert text == (
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
        "Knowledge cutoff: 2024-06\nCurrent date: 2025-06-28\n\nReasoning: high\n\n"
        "# Valid channels: analysis, commentary, final. Channel must be included for every message.\n"
        "Calls to these tools must go to the commentary channel: 'functions'.<|end|>"
        "<|start|>user<|message|>What is the weather like in SF?<|end|><|start|>assistant"
    )
    call = h.render_message(h.tool_call("get_weather", {"location": "San Francisco"}))
    assert call == (
        '<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location": "San Francisco"}<|call|>'
    )
    result = h.render_message(h.tool_result("get_weather", '{"sunny": true, "temperature": 20}'))
    assert (
        result
        == '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{"sunny": true, "temperature": 20}<|end|>'
    )
    assert re.fullmatch(
        r"(<\|start\|>[^<]*<\|message\|>.*?<\|(end|call)\|>)+<\|start\|>assistant", text, re.S
    )
