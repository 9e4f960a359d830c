"""`moa serve` with the real `openai` client on loopback: tiny model, real trained adapters.

Every adapter answers with its own tag (see tiny_adapters.py), so each response shows which
adapter generated it. The promotion test changes the registry, so it runs last.
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from moa.pipeline.registry import LocalRegistry
from tests.unit.serving.conftest import Server, Workdir
from tests.unit.serving.tiny_adapters import LOOKUP, QUESTIONS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]  # trains six adapters on a shared CPU


def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def chat(server: Server, model: str, text: str, **kw: Any) -> tuple[Any, dict[str, str]]:
    kw.setdefault("max_tokens", 40)
    raw = client(server).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], temperature=0, **kw
    )
    return raw.parse(), {k: v for k, v in raw.headers.items() if k.startswith("x-moa")}


def tag_of(response: Any) -> str | None:
    """The tag of the adapter that wrote the response: its final answer `adapter TAG`, or the
    `{"adapter": "TAG"` its tool call starts with (a tiny adapter may stutter after it)."""
    message = response.choices[0].message
    if message.tool_calls:
        found = re.match(r'\{"adapter": "([\w-]+)"', message.tool_calls[0].function.arguments)
    else:
        found = re.match(r"adapter ([\w-]+)", message.content or "")
    return found.group(1) if found else None


def test_models_lists_production_adapters_only(server: Server) -> None:
    models = client(server).models.list().data
    ids = [m.id for m in models]
    assert ids == ["moa-auto", "go-coding", "python-coding", "rust-coding", "typescript-coding"]
    python = next(m for m in models if m.id == "python-coding")
    extra = python.model_extra or {}
    assert extra["parent"].endswith("final_merged") and extra["root"].endswith("adapters/python")
    assert extra["digest"].startswith("sha256:")
    assert {"digest", "tensors", "rank"} <= {c.split(" ")[0] for c in extra["checks"]}


def test_chat_by_language_and_by_adapter_name(server: Server) -> None:
    response, headers = chat(server, "python", "How do I reverse a list?")
    assert tag_of(response) == "python"
    assert response.choices[0].finish_reason == "stop"
    assert headers == {"x-moa-adapter": "python-coding", "x-moa-route-reason": "language:python"}
    assert response.usage is not None and response.usage.completion_tokens > 0
    response, headers = chat(server, "rust-coding", "How do I reverse a list?")
    assert tag_of(response) == "rust"
    assert headers["x-moa-route-reason"] == "explicit"


@pytest.mark.parametrize(
    ("prompt", "adapter", "reason"),
    [
        ("Why does this fail?\n```rust\nlet v = vec![1];\n```", "rust-coding", "auto:files"),
        ("I have tsconfig.json and src/index.ts, what next?", "typescript-coding", "auto:files"),
        ("def f(self):\n    return None\n", "python-coding", "auto:keywords"),
        ("hello there, how are you?", "python-coding", "default (no-signal)"),
    ],
)
def test_auto_routing_says_why(server: Server, prompt: str, adapter: str, reason: str) -> None:
    response, headers = chat(server, "moa-auto", prompt)
    assert headers["x-moa-adapter"] == adapter
    assert headers["x-moa-route-reason"].startswith(reason)
    assert tag_of(response) == adapter.removesuffix("-coding")


def test_metadata_language_routes(server: Server) -> None:
    _, headers = chat(server, "moa-auto", "```python\nx = 1\n```", metadata={"language": "rust"})
    assert (headers["x-moa-adapter"], headers["x-moa-route-reason"]) == (
        "rust-coding",
        "auto:metadata (metadata.language=rust)",
    )


def test_tool_call_parsed_from_harmony(server: Server) -> None:
    response, _ = chat(server, "typescript", "Look up foo.", tools=[LOOKUP])
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "lookup" and call.id.startswith("call_")
    assert tag_of(response) == "typescript"


def test_streaming_content_and_tool_call_deltas(server: Server) -> None:
    stream = client(server).chat.completions.create(
        model="go",
        messages=[{"role": "user", "content": "hi"}],
        temperature=0,
        max_tokens=40,
        stream=True,
        user="stream-user-a",  # sticky: this user gets go's production adapter, not the canary
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text in ("adapter go", "adapter go-canary")
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "stop"
    ]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

    # A question the adapters were trained on: the tiny adapters are only reliable there.
    question = QUESTIONS[0]
    stream = client(server).chat.completions.create(
        model="rust",
        messages=[{"role": "user", "content": question}],
        tools=[LOOKUP],
        temperature=0,
        max_tokens=40,
        stream=True,
    )
    deltas = [c.choices[0] for c in stream if c.choices]
    calls = [d.delta.tool_calls[0] for d in deltas if d.delta.tool_calls]
    assert calls[0].function.name == "lookup" and calls[0].id and len(calls) > 1  # name first, then arguments
    streamed = "".join(c.function.arguments or "" for c in calls)
    plain, headers = chat(server, "rust", question, tools=[LOOKUP])
    assert streamed == plain.choices[0].message.tool_calls[0].function.arguments  # the same text either way
    # (Whose arguments they are is checked on the plain path; the tiny rust adapter's tool-call
    # arguments are its least reliable output, so this test checks the stream against it.)
    assert headers["x-moa-adapter"] == "rust-coding" and streamed
    assert deltas[-1].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "cobol-coding", "messages": [{"role": "user", "content": "x"}]}, 404, "model"),
        ({"model": "python", "messages": [{"role": "robot", "content": "x"}]}, 400, "messages.0.role"),
        ({"model": "python", "messages": []}, 400, "messages"),
        ({"model": "python", "messages": [{"role": "user", "content": "x " * 5000}]}, 400, "messages"),
        (
            {
                "model": "python",
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "bad name", "parameters": {}}}],
            },
            400,
            "tools.0.function",
        ),
        (
            {"model": "python", "messages": [{"role": "tool", "content": "x", "tool_call_id": "nope"}]},
            400,
            "messages.0.tool_call_id",
        ),
        (
            {
                "model": "moa-auto",
                "messages": [{"role": "user", "content": "x"}],
                "metadata": {"language": "cobol"},
            },
            400,
            "metadata.language",
        ),
    ],
)
def test_bad_requests_get_openai_errors(
    server: Server, body: dict[str, Any], status: int, param: str
) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client(server).chat.completions.create(**body)
    assert caught.value.status_code == status
    error = caught.value.body
    assert isinstance(error, dict) and error["param"].startswith(param) and error["message"]
    assert error["type"] == "invalid_request_error"


def test_body_that_is_not_json_and_the_worker_survives(server: Server) -> None:
    reply = httpx.post(
        server.url + "/v1/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert reply.status_code == 400 and "not valid JSON" in reply.json()["error"]["message"]
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_concurrent_mixed_languages_never_use_the_wrong_adapter(server: Server) -> None:
    jobs = []
    for i in range(32):
        language = ("python", "rust", "typescript", "go")[i % 4]
        jobs.append((language, f"user-{i}", i % 3 == 0))

    def one(job: tuple[str, str, bool]) -> tuple[str, str, str]:
        language, user, tools = job
        extra: dict[str, Any] = {"tools": [LOOKUP]} if tools else {}
        question = QUESTIONS[int(user.split("-")[1]) % len(QUESTIONS)]  # what the tiny adapters know
        response, headers = chat(server, language, question, user=user, **extra)
        return language, headers["x-moa-adapter"], str(tag_of(response))

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, jobs))
    wrong = [r for r in results if r[2] != r[1].removesuffix("-coding") or not r[1].startswith(r[0])]
    assert wrong == [], wrong
    metrics = httpx.get(server.url + "/metrics").text
    assert 'moa_serve_batch_size_count{adapter="python-coding"}' in metrics


def test_canary_split_is_sticky_and_within_tolerance(server: Server) -> None:
    """go-canary has weight 0.3; 200 users: the canary share must be 0.3 +- 0.1 (3 sigma of a
    binomial with n=200 is 0.097), and one user always gets the same variant."""

    def adapter_for(user: str) -> str:
        _, headers = chat(server, "go", "hi", user=user, max_tokens=1)
        return headers["x-moa-adapter"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        seen = list(pool.map(adapter_for, [f"u{i}" for i in range(200)]))
    share = seen.count("go-canary") / len(seen)
    assert 0.2 <= share <= 0.4, share
    assert set(seen) == {"go-coding", "go-canary"}
    assert len({adapter_for("sticky-user") for _ in range(5)}) == 1
    metrics = httpx.get(server.url + "/metrics").text
    assert 'variant="canary"' in metrics and 'variant="production"' in metrics


def test_metrics_cover_requests_latency_tokens_and_adapters(server: Server) -> None:
    chat(server, "moa-auto", "```rust\nfn main() {}\n```", max_tokens=2)  # a detection to measure
    text = httpx.get(server.url + "/metrics").text
    for name in (
        "moa_serve_requests_total",
        "moa_serve_time_to_first_token_seconds_bucket",
        "moa_serve_request_seconds_bucket",
        "moa_serve_tokens_total",
        "moa_serve_detection_confidence_bucket",
        "moa_serve_adapters_loaded 5.0",
        "moa_serve_adapter_swap_seconds_bucket",
    ):
        assert name in text, name


def test_promotion_is_served_without_restart_and_retirement_unloads(
    server: Server, served_workdir: Workdir
) -> None:
    failures: list[str] = []
    answered: list[str] = []
    stop = threading.Event()

    def traffic() -> None:  # requests keep flowing while the registry changes
        while not stop.is_set():
            try:
                response, _ = chat(server, "python", QUESTIONS[0], max_tokens=20)
                answered.append(tag_of(response))
            except Exception as exc:
                failures.append(repr(exc))

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        time.sleep(1)
        LocalRegistry(served_workdir.root).promote("python-v2", "production")  # retires python-coding
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = httpx.get(server.url + "/readyz").json()
            if "python-v2" in ready["adapters"] and "python-coding" not in ready["loaded"]:
                break
            time.sleep(0.3)
        time.sleep(1)
    finally:
        stop.set()
        worker.join()
    assert failures == []
    assert "python-coding" not in ready["adapters"] and "python-coding" not in ready["loaded"]
    assert answered[0] == "python" and answered[-1] == "python2"
    response, headers = chat(server, "python", QUESTIONS[0])
    assert (tag_of(response), headers["x-moa-adapter"]) == ("python2", "python-v2")
    assert "python-coding" not in [m.id for m in client(server).models.list().data]
