"""Structural rules a Harmony trajectory must follow to be training data.

`parse` already guarantees the text is well formed; these rules check that it makes sense
as an agent conversation for gpt-oss: the system and developer messages in place, a
channel on every assistant message, tool calls only on the commentary channel to a
declared function with arguments that satisfy its JSON schema, every tool result
answering the call just before it, and a proper end. `validate` returns every problem
(never raises) so a data gate can count them and show the first few.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from moa.harmony import tokens as T
from moa.harmony.errors import HarmonyError
from moa.harmony.model import FUNCTIONS, Conversation, Message
from moa.harmony.parse import parse
from moa.harmony.render import render_message
from moa.harmony.tools import AGENT_TOOLS, Tool, declared_functions, parse_call

FUNCTIONS_NOTE = "Calls to these tools must go to the commentary channel: 'functions'."
CHANNELS_NOTE = "# Valid channels: analysis, commentary, final."


@dataclass(frozen=True)
class Problem:
    """One broken rule. `index` is the message number (None: the conversation as a whole)."""

    rule: str
    message: str
    index: int | None = None

    def __str__(self) -> str:
        where = f"message {self.index}: " if self.index is not None else ""
        return f"{where}{self.message} [{self.rule}]"


def check_text(text: str, tools: Sequence[Tool] = AGENT_TOOLS) -> list[Problem]:
    """Parse and validate: a syntax error is one `syntax` problem with its position."""
    try:
        conversation = parse(text)
    except HarmonyError as exc:
        return [Problem("syntax", str(exc))]
    return validate(conversation, tools)


def validate(conversation: Conversation, tools: Sequence[Tool] = AGENT_TOOLS) -> list[Problem]:
    messages = conversation.messages
    if not messages:
        return [Problem("empty", "the conversation has no messages")]
    problems = _layout(messages)
    declared = {name for m in messages if m.role == "developer" for name in declared_functions(m.content)}
    pending: tuple[int, Message] | None = None  # the tool call still waiting for its result
    seen_user = False
    for i, m in enumerate(messages):
        problems += _message(i, m)
        seen_user = seen_user or m.role == "user"
        if m.role == "assistant" and not seen_user:
            problems.append(Problem("user-first", "the assistant speaks before any user message", i))
        if pending is not None and m.role != "tool":
            problems.append(
                Problem(
                    "unanswered-call",
                    f"the call to {pending[1].recipient} (message {pending[0]}) gets no result",
                    i,
                )
            )
            pending = None
        if m.is_tool_call:
            problems += _call(i, m, tools, declared)
            pending = (i, m)
        elif m.role == "tool":
            problems += _result(i, m, pending)
            pending = None
    problems += _ending(conversation, pending)
    if any(m.is_tool_call for m in messages) and FUNCTIONS_NOTE not in messages[0].content:
        problems.append(
            Problem(
                "system-functions", f"tool calls are made but the system message lacks {FUNCTIONS_NOTE!r}", 0
            )
        )
    return problems


def _layout(messages: Sequence[Message]) -> list[Problem]:
    """System first, developer right after it, each at most once."""
    problems = []
    if messages[0].role != "system":
        problems.append(Problem("system-first", "the first message must be the system message", 0))
    elif CHANNELS_NOTE not in messages[0].content:
        problems.append(Problem("system-channels", f"the system message must declare {CHANNELS_NOTE!r}", 0))
    for i, m in enumerate(messages):
        if m.role == "system" and i != 0:
            problems.append(Problem("system-first", "a system message after the start", i))
        if m.role == "developer" and (i != 1 or messages[0].role != "system"):
            problems.append(
                Problem(
                    "developer-second", "the developer message must directly follow the system message", i
                )
            )
    return problems


def _message(i: int, m: Message) -> list[Problem]:
    problems = []
    try:
        render_message(m, i)
    except HarmonyError as exc:
        problems.append(Problem("unrenderable", exc.reason, i))
    found = T.RESERVED_RE.search(m.content)
    if found:
        problems.append(Problem("special-token", f"content contains the special token {found.group()}", i))
    if m.role == "assistant":
        if m.channel is None:
            problems.append(
                Problem(
                    "channel-required",
                    "assistant messages must name a channel (analysis, commentary, final)",
                    i,
                )
            )
        elif m.channel not in T.CHANNELS:
            problems.append(
                Problem(
                    "channel-unknown", f"unknown channel {m.channel!r} (valid: {', '.join(T.CHANNELS)})", i
                )
            )
    elif m.role in ("system", "developer", "user") and (m.channel or m.recipient or m.content_type):
        problems.append(
            Problem("header", f"{m.role} messages carry no channel, recipient or content type", i)
        )
    return problems


def _call(i: int, m: Message, tools: Sequence[Tool], declared: set[str]) -> list[Problem]:
    problems = []
    if m.channel != "commentary":
        problems.append(
            Problem("call-channel", f"tool calls go to the commentary channel, not {m.channel!r}", i)
        )
    if m.content_type != "json":
        problems.append(
            Problem(
                "call-format",
                f"function arguments are constrained JSON (<|constrain|>json), not {m.content_type!r}",
                i,
            )
        )
    call = parse_call(m, tools)
    if call is not None and call.problems:
        rule = (
            "call-unknown"
            if call.arguments is None and "unknown function" in call.problems[0]
            else "call-arguments"
        )
        problems += [Problem(rule, f"{m.recipient}: {p}", i) for p in call.problems]
    if m.function is not None and m.function not in declared:
        problems.append(
            Problem("call-undeclared", f"{m.recipient} is not declared in the developer message's tools", i)
        )
    return problems


def _result(i: int, m: Message, pending: tuple[int, Message] | None) -> list[Problem]:
    problems = []
    if pending is None:
        problems.append(Problem("result-orphan", f"a result from {m.name} that answers no call", i))
    elif pending[1].recipient != m.name:
        problems.append(
            Problem(
                "result-mismatch", f"a result from {m.name} answers the call to {pending[1].recipient}", i
            )
        )
    if not (m.name or "").startswith(FUNCTIONS + "."):
        problems.append(Problem("result-author", f"tool results come from functions.NAME, not {m.name!r}", i))
    if m.recipient != "assistant" or m.channel != "commentary":
        problems.append(
            Problem("result-header", "tool results are sent 'to=assistant' on the commentary channel", i)
        )
    return problems


def _ending(conversation: Conversation, pending: tuple[int, Message] | None) -> list[Problem]:
    last = len(conversation.messages) - 1
    if conversation.mode == "completion":
        if pending is not None:
            return [Problem("ending", "a completion prompt must not end on an unanswered tool call", last)]
        return []
    if pending is not None:
        return [
            Problem("ending", "the conversation ends on a tool call; it must end with the final answer", last)
        ]
    m = conversation.messages[-1]
    if not (m.role == "assistant" and m.channel == "final"):
        return [
            Problem("ending", "the conversation must end with the assistant's final-channel answer", last)
        ]
    return []
