"""Rollouts and eval read a sampled turn with the same tolerant parser as `moa serve`."""

from __future__ import annotations

import pytest

from moa.agent.rollout import Episode, parse_turn

ARGS = '{"path": "src/a.py"}'


@pytest.mark.parametrize(
    "text",
    [
        f"<|channel|>commentary to=functions.read_file <|constrain|>json<|message|>{ARGS}<|call|>",
        f"<|channel|>commentary to=functions.read_file<|constrain|>json<|message|>{ARGS}<|call|>",
        f"<|channel|>commentary to=functions.read_file <|constrain|>json{ARGS}<|call|>",
        f"<|channel|>commentary to=functions.read_file <|constrain|>json<|message|>{ARGS}",
        f"<|channel|>commentary to=functions.read_file json<|message|>{ARGS}<|call|><|return|>",
    ],
)
def test_real_model_shapes_are_valid_tool_calls(text: str) -> None:
    turn = parse_turn(text)
    assert turn.problem is None
    assert turn.call == ("read_file", {"path": "src/a.py"})


def test_a_call_to_an_unknown_tool_stays_invalid() -> None:
    turn = parse_turn(f"<|channel|>commentary to=functions.rm_rf <|constrain|>json<|message|>{ARGS}<|call|>")
    assert turn.call is None and turn.problem is not None and "unknown function" in turn.problem


@pytest.mark.parametrize(
    "text",
    [
        "<|channel|>final<|message|>hi<|message|>there<|return|>",
        "<|channel|>analysis<|message|>x<|end|><|start|>assistant<|channel|>final<|message|>a<|constrain|>b",
    ],
)
def test_a_stray_special_token_breaks_the_protocol_and_the_episode_still_shows(text: str) -> None:
    """A tiny random model writes such turns; eval and preferences must not crash rendering them."""
    turn = parse_turn(text)
    assert turn.problem is not None and turn.problem.startswith("not valid Harmony")
    episode = Episode(messages=list(turn.messages), completions=[text], problem=turn.problem)
    assert not episode.renderable
    assert episode.transcript == text
