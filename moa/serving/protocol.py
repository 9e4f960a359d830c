"""The OpenAI chat-completions request, checked, and its translation to and from Harmony.

Requests are rendered as gpt-oss was trained and as the reference renders a prompt: the
system message (reasoning effort), a developer message with the request's system/developer
instructions and its tools as function definitions, the conversation (earlier tool calls and
their results included), analysis of finished turns dropped. The model's output is read with
the tolerant parser: final -> `content`, analysis -> `reasoning_content`, commentary
`to=functions.X` -> `tool_calls`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from moa import harmony as h


class APIError(Exception):
    """An OpenAI-shaped error: `{"error": {"message", "type", "param", "code"}}` with `status`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class _Open(BaseModel):
    # Unknown OpenAI fields (logprobs, n=1, ...) are accepted and ignored, as vLLM does.
    model_config = ConfigDict(extra="allow")


class FunctionDef(_Open):
    name: str
    description: str = ""
    parameters: dict[str, Any] | None = None


class ToolDef(_Open):
    type: Literal["function"]
    function: FunctionDef


class FunctionCall(_Open):
    name: str
    arguments: str


class ToolCallIn(_Open):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    reasoning_content: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatRequest(_Open):
    model: str = "moa-auto"
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[ToolDef] | None = None
    tool_choice: str | dict[str, Any] | None = None
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    user: str | None = None
    metadata: dict[str, Any] | None = None
    reasoning_effort: Literal["low", "medium", "high"] = "medium"
    stream_options: dict[str, Any] | None = None

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


def parse_request(body: Any) -> ChatRequest:
    """The request, or a 400 naming the first bad field (`messages.1.role`)."""
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object")
    try:
        return ChatRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise APIError(400, f"{where}: {first['msg']}", param=where) from None


def tools_of(request: ChatRequest) -> list[h.Tool]:
    """The request's functions as Harmony tools; a bad schema is a 400 naming the tool."""
    out = []
    for i, tool in enumerate(request.tools or []):
        fn = tool.function
        try:
            out.append(h.Tool(fn.name, fn.description, fn.parameters))
        except ValueError as exc:
            raise APIError(400, f"tools.{i}.function: {exc}", param=f"tools.{i}.function") from None
    return out


def conversation(request: ChatRequest) -> h.Conversation:
    """The Harmony conversation of a request, ending in the open assistant header."""
    instructions = [m.text() for m in request.messages if m.role in ("system", "developer")]
    tools = tools_of(request)
    messages = [
        h.system_message(reasoning=request.reasoning_effort, function_tools=bool(tools)),
    ]
    if instructions or tools:
        messages.append(h.developer_message("\n\n".join(instructions) or None, tools))
    call_names: dict[str, str] = {}
    for i, m in enumerate(request.messages):
        if m.role == "user":
            messages.append(h.user(m.text()))
        elif m.role == "assistant":
            if m.reasoning_content:
                messages.append(h.analysis(m.reasoning_content))
            if m.text():
                # Text next to tool calls is a preamble (commentary); alone it is the answer.
                messages.append(h.preamble(m.text()) if m.tool_calls else h.final(m.text()))
            for call in m.tool_calls or []:
                call_names[call.id] = call.function.name
                messages.append(_tool_call(call, i))
        elif m.role == "tool":
            name = call_names.get(m.tool_call_id or "") or m.name
            if not name:
                raise APIError(
                    400,
                    f"messages.{i}: a tool message needs a tool_call_id of an earlier assistant tool call",
                    param=f"messages.{i}.tool_call_id",
                )
            messages.append(h.tool_result(name, m.text()))
    if messages[-1].role == "assistant" and messages[-1].channel == "final":
        raise APIError(
            400, "the last message is the assistant's answer: nothing to complete", param="messages"
        )
    return h.Conversation(messages, "completion")


def _tool_call(call: ToolCallIn, index: int) -> h.Message:
    try:
        arguments = json.loads(call.function.arguments or "{}")
    except ValueError as exc:
        raise APIError(
            400,
            f"messages.{index}.tool_calls: arguments of {call.function.name} are not JSON: {exc}",
            param=f"messages.{index}.tool_calls",
        ) from None
    return h.tool_call(call.function.name, arguments)


def render_prompt(request: ChatRequest) -> str:
    try:
        return h.render(conversation(request), "completion", drop_analysis=True)
    except h.HarmonyError as exc:
        raise APIError(400, f"messages: {exc}", param="messages") from None


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def choice_message(output: h.ParsedOutput, stopped: bool) -> tuple[dict[str, Any], str]:
    """(the OpenAI assistant message, finish_reason) of a parsed completion; `stopped`: the
    engine stopped on a stop token (not at the token limit)."""
    content = [m.content for m in output.messages if _is_content(m)]
    reasoning = [m.content for m in output.messages if m.channel == "analysis" and not m.recipient]
    calls = [
        {
            "id": new_call_id(),
            "type": "function",
            "function": {"name": m.function or str(m.recipient), "arguments": m.content},
        }
        for m in output.messages
        if m.is_tool_call
    ]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(content) if content else None}
    if reasoning:
        message["reasoning_content"] = "\n".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    return message, finish_reason(bool(calls), stopped)


def finish_reason(called: bool, stopped: bool) -> str:
    if called:
        return "tool_calls"
    return "stop" if stopped else "length"


def _is_content(message: h.Message) -> bool:
    """User-visible text: the final answer, and commentary preambles addressed to nobody."""
    return message.recipient is None and message.channel in ("final", "commentary")
