"""Chat teachers: a model behind an HTTP chat API chooses the agent's actions.

`OpenAITeacher` speaks `/chat/completions` with tools (OpenAI and compatible servers: vLLM,
llama.cpp, SGLang...); `AnthropicTeacher` the Messages API with tool use. Both turn the
model's turns into Harmony messages and run every call through the one `Executor`.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from moa import harmony as h
from moa.agent.executor import Executor
from moa.agent.tasks import Bug
from moa.datagen.teachers import Demonstration


@dataclass
class ModelTurn:
    reasoning: str
    text: str
    calls: list[tuple[str, str, str]]  # (call id, tool name, arguments JSON)


class ChatTeacher:
    """A model that chooses the actions; subclasses speak one wire format."""

    name = "chat"
    default_endpoint = ""
    key_env = ""

    def __init__(
        self,
        model: str,
        endpoint: str | None = None,
        max_turns: int = 16,
        temperature: float = 0.2,
        timeout_s: float = 120.0,
    ) -> None:
        self.model = model
        self.endpoint = (endpoint or self.default_endpoint).rstrip("/")
        self.max_turns = max_turns
        self.temperature = temperature
        self.api_key = os.environ.get("MOA_TEACHER_API_KEY") or os.environ.get(self.key_env, "")
        self.client = httpx.Client(timeout=timeout_s)

    def demonstrate(
        self, task: Bug, prompt: Sequence[h.Message], executor: Executor, rng: random.Random
    ) -> Demonstration:
        ep = Demonstration()
        instructions = (
            "\n\n".join(m.content for m in prompt if m.role == "developer")
            .split("# Tools")[0]
            .replace("# Instructions", "")
            .strip()
        )
        history = self.start(instructions, next(m.content for m in prompt if m.role == "user"))
        for _ in range(self.max_turns):
            turn = self.complete(history)
            if turn.reasoning.strip():
                ep.messages.append(h.analysis(turn.reasoning.strip()))
            if not turn.calls:
                ep.messages.append(h.final(turn.text.strip() or "Done."))
                break
            if turn.text.strip():
                ep.messages.append(h.preamble(turn.text.strip()))
            results = []
            for call_id, name, args in turn.calls:
                obs = executor.call(name, args)
                try:
                    parsed = json.loads(args)
                except ValueError:
                    parsed = None
                if obs.invalid or not isinstance(parsed, dict):
                    ep.reason = f"invalid tool call to {name}: {obs.text[:200]}"
                ep.messages.append(
                    h.tool_call(name, parsed)
                    if isinstance(parsed, dict)
                    else h.Message(
                        "assistant",
                        args,
                        channel="commentary",
                        recipient=f"functions.{name}",
                        content_type="json",
                    )
                )
                ep.messages.append(h.tool_result(name, obs.text))
                results.append((call_id, obs.text, not obs.ok))
            if ep.reason:  # not usable as training data: stop spending API calls on it
                return ep
            self.extend(history, turn, results)
        else:
            ep.reason = f"no final answer within {self.max_turns} turns"
            return ep
        executor.call("run_tests", "{}")  # judge the end state ourselves, whatever the model claimed
        ep.passed = executor.last_tests is not None and executor.last_tests.passed
        ep.reason = "" if ep.passed else "the tests are red at the end"
        return ep

    def post(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        for attempt in range(4):
            resp = self.client.post(url, json=body, headers=headers)
            if resp.status_code in (429, 500, 502, 503, 504, 529) and attempt < 3:
                time.sleep(min(8.0, 0.5 * 2**attempt))
                continue
            if resp.status_code >= 400:
                raise RuntimeError(
                    f"{self.name} teacher: {url} -> HTTP {resp.status_code}: {resp.text[:300]}"
                )
            data: dict[str, Any] = resp.json()
            return data
        raise AssertionError("unreachable")

    # wire format ---------------------------------------------------------------------------------
    def start(self, instructions: str, ask: str) -> dict[str, Any]:
        raise NotImplementedError

    def complete(self, history: dict[str, Any]) -> ModelTurn:
        raise NotImplementedError

    def extend(self, history: dict[str, Any], turn: ModelTurn, results: list[tuple[str, str, bool]]) -> None:
        raise NotImplementedError


class OpenAITeacher(ChatTeacher):
    """`POST {endpoint}/chat/completions` with `tools` (OpenAI and compatible servers: vLLM,
    llama.cpp, SGLang...). `endpoint` is the base URL including `/v1`. Reasoning, where the
    server returns it (`reasoning_content` / `reasoning`), becomes the analysis channel."""

    name = "openai"
    default_endpoint = "https://api.openai.com/v1"
    key_env = "OPENAI_API_KEY"

    def start(self, instructions: str, ask: str) -> dict[str, Any]:
        return {"messages": [{"role": "system", "content": instructions}, {"role": "user", "content": ask}]}

    def complete(self, history: dict[str, Any]) -> ModelTurn:
        tools = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
            }
            for t in h.AGENT_TOOLS
        ]
        body = {
            "model": self.model,
            "messages": history["messages"],
            "tools": tools,
            "temperature": self.temperature,
        }
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        data = self.post(f"{self.endpoint}/chat/completions", body, headers)
        message = data["choices"][0]["message"]
        history["last"] = message
        calls = [
            (c["id"], c["function"]["name"], c["function"].get("arguments") or "{}")
            for c in message.get("tool_calls") or []
        ]
        reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
        return ModelTurn(str(reasoning), message.get("content") or "", calls)

    def extend(self, history: dict[str, Any], turn: ModelTurn, results: list[tuple[str, str, bool]]) -> None:
        last = history.pop("last")
        history["messages"].append({k: v for k, v in last.items() if k in ("role", "content", "tool_calls")})
        history["messages"] += [
            {"role": "tool", "tool_call_id": cid, "content": text} for cid, text, _ in results
        ]


class AnthropicTeacher(ChatTeacher):
    """The Messages API (`POST {endpoint}/v1/messages`, `x-api-key`, `anthropic-version`)
    with tool use. Thinking blocks become the analysis channel and are sent back unchanged,
    as the API requires during tool use."""

    name = "anthropic"
    default_endpoint = "https://api.anthropic.com"
    key_env = "ANTHROPIC_API_KEY"
    version = "2023-06-01"

    def start(self, instructions: str, ask: str) -> dict[str, Any]:
        return {"system": instructions, "messages": [{"role": "user", "content": ask}]}

    def complete(self, history: dict[str, Any]) -> ModelTurn:
        tools = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in h.AGENT_TOOLS
        ]
        body = {
            "model": self.model,
            "max_tokens": 4096,
            "system": history["system"],
            "messages": history["messages"],
            "tools": tools,
            "temperature": self.temperature,
        }
        headers = {"x-api-key": self.api_key, "anthropic-version": self.version}
        data = self.post(f"{self.endpoint}/v1/messages", body, headers)
        blocks = data.get("content") or []
        history["last"] = blocks
        return ModelTurn(
            "\n".join(b.get("thinking", "") for b in blocks if b.get("type") == "thinking"),
            "\n".join(b.get("text", "") for b in blocks if b.get("type") == "text"),
            [
                (b["id"], b["name"], json.dumps(b.get("input", {})))
                for b in blocks
                if b.get("type") == "tool_use"
            ],
        )

    def extend(self, history: dict[str, Any], turn: ModelTurn, results: list[tuple[str, str, bool]]) -> None:
        history["messages"].append({"role": "assistant", "content": history.pop("last")})
        history["messages"].append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": cid, "content": text, "is_error": err}
                    for cid, text, err in results
                ],
            }
        )
