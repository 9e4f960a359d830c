"""Harmony conversations as plain data.

A message is the header fields Harmony puts between `<|start|>` and `<|message|>` plus its
text. System and developer content is already text here (build it with
`moa.harmony.render.system_message` / `developer_message`), which keeps render and parse
exact inverses: what you parse is what you render.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["system", "developer", "user", "assistant", "tool"]
Channel = Literal["analysis", "commentary", "final"]

# How a rendered text ends:
#   history     every message ends with <|end|> (or <|call|> for a tool call): a stored transcript;
#   training    as history, but a last assistant `final` message ends with <|return|> (an SFT target);
#   completion  history followed by an open `<|start|>assistant` header: a prompt to sample from.
Mode = Literal["history", "training", "completion"]

FUNCTIONS = "functions"  # the namespace of developer-defined tools


@dataclass(frozen=True)
class Message:
    """One Harmony message.

    `name` is the author name: for a `tool` message it is the tool that answered
    (`functions.read_file`) and is what Harmony writes in place of the role.
    `recipient` is `functions.NAME` on a tool call and `assistant` on a tool result.
    `content_type` is the format of a tool call's arguments (`json`); `constrained` says
    whether it was written after `<|constrain|>` (what moa renders) or as a bare word, as a
    model may sample it: history is re-rendered the way it was written.
    """

    role: Role
    content: str
    channel: str | None = None
    recipient: str | None = None
    content_type: str | None = None
    name: str | None = None
    constrained: bool = True

    @property
    def is_tool_call(self) -> bool:
        return self.role == "assistant" and self.recipient is not None

    @property
    def function(self) -> str | None:
        """`NAME` of a call to `functions.NAME` (or of a result from it), else None."""
        target = self.recipient if self.role == "assistant" else self.name
        if target and target.startswith(FUNCTIONS + "."):
            return target[len(FUNCTIONS) + 1 :]
        return None


@dataclass(frozen=True)
class Conversation:
    messages: tuple[Message, ...]
    mode: Mode = "history"

    def __post_init__(self) -> None:
        # Accept any sequence but store a tuple so conversations are hashable and comparable.
        object.__setattr__(self, "messages", tuple(self.messages))


def user(text: str) -> Message:
    return Message("user", text)


def analysis(text: str) -> Message:
    """Chain of thought: the model's private reasoning channel."""
    return Message("assistant", text, channel="analysis")


def preamble(text: str) -> Message:
    """A user-visible note on the commentary channel, typically before tool calls."""
    return Message("assistant", text, channel="commentary")


def final(text: str) -> Message:
    return Message("assistant", text, channel="final")


def tool_call(name: str, arguments: dict[str, Any]) -> Message:
    """A call to `functions.NAME`; gpt-oss sends function calls on the commentary channel as JSON."""
    return Message(
        "assistant",
        json.dumps(arguments, ensure_ascii=False),
        channel="commentary",
        recipient=f"{FUNCTIONS}.{name}",
        content_type="json",
    )


def tool_result(name: str, output: str) -> Message:
    """The answer of `functions.NAME`, addressed back to the assistant."""
    return Message("tool", output, channel="commentary", recipient="assistant", name=f"{FUNCTIONS}.{name}")
