"""Teachers write agent demonstrations: the messages between a bug's prompt and the final answer.

Every teacher acts through the same `Executor`, so every observation in the data is real:
the oracle (`moa.datagen.oracle`) scripts its *actions* from the known fix but never its
observations; the chat teachers (`moa.datagen.chat_teachers`: `openai`, any OpenAI-compatible
`/chat/completions` with tool calling; `anthropic`, the Messages API with tool use) let a model
choose the actions. A demonstration is worth keeping only if the tests end green, which the
caller checks on `Demonstration.passed`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from moa import harmony as h
from moa.agent.executor import Executor
from moa.agent.tasks import Bug


@dataclass
class Demonstration:
    """What a teacher did on one bug: the messages after the prompt, and whether the tests ended green."""

    messages: list[h.Message] = field(default_factory=list)  # after the prompt
    passed: bool = False
    reason: str = ""  # why it is not usable, when it is not

    @property
    def n_tool_calls(self) -> int:
        return sum(m.is_tool_call for m in self.messages)

    @property
    def turns(self) -> int:
        """Sampling turns: each ends on a tool call or on the final answer."""
        return self.n_tool_calls + sum(m.channel == "final" for m in self.messages if m.role == "assistant")


class Teacher(Protocol):
    name: str

    def demonstrate(
        self, task: Bug, prompt: Sequence[h.Message], executor: Executor, rng: random.Random
    ) -> Demonstration: ...


def act(episode: Demonstration, executor: Executor, name: str, args: dict[str, Any]) -> str:
    episode.messages.append(h.tool_call(name, args))
    obs = executor.call(name, json.dumps(args))
    episode.messages.append(h.tool_result(name, obs.text))
    return obs.text


def make_teacher(
    kind: str, model: str | None = None, endpoint: str | None = None, max_turns: int = 16
) -> Teacher:
    if kind == "oracle":
        from moa.datagen.oracle import OracleTeacher

        return OracleTeacher()
    if not model:
        raise ValueError(f"the {kind} teacher needs a model (spec.data.teacher.model or --model)")
    from moa.datagen.chat_teachers import AnthropicTeacher, OpenAITeacher

    if kind == "openai":
        return OpenAITeacher(model, endpoint, max_turns)
    if kind == "anthropic":
        return AnthropicTeacher(model, endpoint, max_turns)
    raise ValueError(f"unknown teacher {kind!r}; expected oracle, openai or anthropic")
