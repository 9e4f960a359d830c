"""Conversation -> Harmony text, and the system/developer messages gpt-oss expects.

Header order follows what gpt-oss itself generates: for assistant messages the recipient
comes after the channel (`<|channel|>commentary to=functions.x <|constrain|>json`); for
other authors it follows the author (`functions.x to=assistant<|channel|>commentary`),
as in the Harmony guide. The parser reads both positions.

By default nothing is dropped: moa's trajectories are training targets whose chain of
thought between tool calls is exactly what the model should learn. A prompt for sampling
(`moa serve`, rollouts) is rendered as the inference stack does with `drop_analysis=True`:
the analysis of turns that already ended in a final answer is left out, the analysis of
the turn in progress (between its tool calls) is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from moa.harmony import tokens as T
from moa.harmony.errors import HarmonyError
from moa.harmony.model import Conversation, Message, Mode
from moa.harmony.tools import Tool, render_tools

Reasoning = Literal["low", "medium", "high"]
# Where an assistant message's recipient goes: after the channel (what gpt-oss generates and
# moa renders) or after the author (`assistant to=functions.x<|channel|>commentary`).
RecipientPosition = Literal["channel", "role"]
CHANNELS = ("analysis", "commentary", "final")

MODEL_IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."


def system_message(
    *,
    reasoning: Reasoning = "medium",
    knowledge_cutoff: str = "2024-06",
    current_date: str | None = None,
    model_identity: str = MODEL_IDENTITY,
    function_tools: bool = True,
    channels: Sequence[str] = CHANNELS,
) -> Message:
    """The system message gpt-oss was trained with. Keep the identity line as it is (the
    Harmony guide asks for it); give the agent its persona in the developer message.
    Reasoning effort defaults to "medium", as the reference's does."""
    top = [model_identity, f"Knowledge cutoff: {knowledge_cutoff}"]
    if current_date:
        top.append(f"Current date: {current_date}")
    sections = ["\n".join(top), f"Reasoning: {reasoning}"]
    if channels:
        valid = f"# Valid channels: {', '.join(channels)}. Channel must be included for every message."
        if function_tools:
            valid += "\nCalls to these tools must go to the commentary channel: 'functions'."
        sections.append(valid)
    return Message("system", "\n\n".join(sections))


def developer_message(instructions: str | None, tools: Sequence[Tool] = ()) -> Message:
    sections = ["# Instructions", instructions] if instructions else []
    if tools:
        sections.append(render_tools(tools))
    return Message("developer", "\n\n".join(sections))


def render(
    conversation: Conversation,
    mode: Mode | None = None,
    *,
    drop_analysis: bool = False,
    recipient: RecipientPosition = "channel",
) -> str:
    """The Harmony text of a conversation; `mode` (default: the conversation's own) says
    how it ends, see `moa.harmony.model.Mode`. `drop_analysis` leaves out the analysis
    of turns that ended in a final answer (as the reference renders a prompt);
    `recipient` places assistant recipients (see `RecipientPosition`)."""
    mode = mode or conversation.mode
    messages = conversation.messages
    if drop_analysis:
        messages = _without_finished_analysis(messages)
    parts = [render_message(m, i, recipient) for i, m in enumerate(messages)]
    if mode == "training" and messages and _is_final(messages[-1]):
        parts[-1] = parts[-1][: -len(T.END)] + T.RETURN
    if mode == "completion":
        parts.append(T.START + "assistant")
    return "".join(parts)


def _without_finished_analysis(messages: Sequence[Message]) -> tuple[Message, ...]:
    """Drop every assistant analysis message before the last final answer: those turns are
    over, and the model never sees its old chain of thought again."""
    last_final = max((i for i, m in enumerate(messages) if _is_final(m)), default=-1)
    return tuple(
        m
        for i, m in enumerate(messages)
        if not (i < last_final and m.role == "assistant" and m.channel == "analysis")
    )


def render_message(
    message: Message, index: int = 0, recipient_position: RecipientPosition = "channel"
) -> str:
    _check_renderable(message, index)
    author = message.name if message.role == "tool" else message.role
    if message.role != "tool" and message.name:
        author = f"{message.role}:{message.name}"
    header = str(author)
    recipient = f" to={message.recipient}" if message.recipient else ""
    if message.channel is not None and message.role == "assistant" and recipient_position == "channel":
        header += f"{T.CHANNEL}{message.channel}{recipient}"
    elif message.channel is not None:
        header += f"{recipient}{T.CHANNEL}{message.channel}"
    else:
        header += recipient
    if message.content_type:
        header += f" {T.CONSTRAIN if message.constrained else ''}{message.content_type}"
    end = T.CALL if message.is_tool_call else T.END
    return f"{T.START}{header}{T.MESSAGE}{message.content}{end}"


def _is_final(message: Message) -> bool:
    return message.role == "assistant" and message.channel == "final" and message.recipient is None


def _check_renderable(message: Message, index: int) -> None:
    """Refuse what could not be read back: special tokens in content, spaces in header words."""
    if message.role not in T.ROLES:
        raise HarmonyError(f"unknown role {message.role!r}", index=index, expected=", ".join(T.ROLES))
    if message.role == "tool" and not message.name:
        raise HarmonyError("a tool message needs the tool's name (e.g. functions.read_file)", index=index)
    found = T.STRUCTURAL_RE.search(message.content)
    if found:
        raise HarmonyError(
            f"content contains the special token {found.group()} at character {found.start()}; "
            "it would end the message early (escape or drop it)",
            index=index,
        )
    for field, value in (
        ("name", message.name),
        ("recipient", message.recipient),
        ("channel", message.channel),
        ("content_type", message.content_type),
    ):
        if value is not None and (not value or any(c.isspace() for c in value) or "<|" in value):
            raise HarmonyError(f"{field} {value!r} must be one non-empty word without '<|'", index=index)
    if message.role == "tool" and str(message.name).partition(":")[0] in T.ROLES:
        raise HarmonyError(f"tool name {message.name!r} would read back as a {T.ROLES} author", index=index)
