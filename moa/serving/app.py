"""The OpenAI-compatible HTTP surface of `moa serve`.

    POST /v1/chat/completions   chat, plain or SSE (tool calls streamed as deltas)
    POST /v1/completions        a raw Harmony prompt in, raw text out (what the upstream engine speaks)
    GET  /v1/models             the served adapters (production, canary), with parent/root as vLLM lists them
    POST /v1/load_lora_adapter, /v1/unload_lora_adapter   runtime adapters (with --allow-runtime-lora)
    GET  /healthz  /readyz  /metrics

Routing: a served adapter's name -> that adapter; a language's name -> its production adapter
(or canary); `moa-auto` -> the language detector -> the registry's default adapter. Every
response says where it went in `x-moa-adapter` and `x-moa-route-reason`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from moa import harmony as h
from moa.languages.registry import plugins
from moa.serving import protocol as p
from moa.serving.adapters import AdapterSet, Route
from moa.serving.detect import detect
from moa.serving.engine import AdapterCheckError, Engine, Piece, Sampling
from moa.serving.metrics import Metrics

log = logging.getLogger("moa.serving")

AUTO = "moa-auto"
DEFAULT_MAX_TOKENS = 1024


@dataclass
class Routed:
    route: Route
    reason: str
    confidence: float | None = None


@dataclass
class Settings:
    poll_interval_s: float = 2.0
    allow_runtime_lora: bool = False


def create_app(engine: Engine, adapters: AdapterSet, metrics: Metrics, settings: Settings) -> FastAPI:
    runtime: dict[str, str] = {}  # adapters loaded through /v1/load_lora_adapter: name -> path

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await adapters.sync()
        follower = asyncio.create_task(adapters.follow(settings.poll_interval_s))
        yield
        follower.cancel()
        await engine.close()

    app = FastAPI(title="moa serve", lifespan=lifespan)

    @app.exception_handler(p.APIError)
    async def api_error(request: Request, exc: p.APIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        body = p.APIError(500, f"internal error: {exc}", type="server_error").body()
        return JSONResponse(body, status_code=500)

    def resolve(request: p.ChatRequest, text: str) -> Routed:
        name = request.model
        if name in adapters.table.served or name in runtime:
            return Routed(
                Route(name, adapters.language_of(name) or "", adapters.variant_of(name) or "production"),
                "explicit",
            )
        if name in plugins():
            route = adapters.for_language(name, request.user)
            if route is None:
                raise p.APIError(
                    404, f"no production adapter for language {name!r}", param="model", code="model_not_found"
                )
            return Routed(route, f"language:{name}")
        if name != AUTO:
            known = ", ".join([AUTO, *adapters.names(), *sorted(runtime)])
            raise p.APIError(
                404,
                f"the model {name!r} does not exist (served: {known})",
                param="model",
                code="model_not_found",
            )
        try:
            found = detect(text, request.metadata)
        except ValueError as exc:
            raise p.APIError(400, str(exc), param="metadata.language") from None
        if found.language is not None:
            metrics.confidence.labels(found.language).observe(found.confidence)
            route = adapters.for_language(found.language, request.user)
            if route is not None:
                return Routed(route, f"auto:{found.reason} ({found.detail})", found.confidence)
        fallback = adapters.default(request.user)
        if fallback is None:
            raise p.APIError(503, "no adapter is being served yet", type="server_error", code="not_ready")
        why = found.reason if found.language is None else f"no adapter for {found.language}"
        return Routed(fallback, f"default ({why})", found.confidence)

    def headers(routed: Routed) -> dict[str, str]:
        reason = routed.reason.encode("ascii", "replace").decode()[:200]
        out = {"x-moa-adapter": routed.route.adapter, "x-moa-route-reason": reason}
        if routed.route.variant == "canary":
            out["x-moa-variant"] = "canary"
        return out

    def sampling(request: p.ChatRequest, prompt: str) -> Sampling:
        used = engine.count_tokens(prompt)
        room = engine.max_context - used
        wanted = request.token_limit or min(DEFAULT_MAX_TOKENS, room)
        if room <= 0 or wanted > room:
            raise p.APIError(
                400,
                f"this model's maximum context length is {engine.max_context} tokens; the prompt is {used} "
                f"tokens and {wanted} more were requested",
                param="messages",
                code="context_length_exceeded",
            )
        return Sampling(wanted, request.temperature, request.top_p)

    @app.post("/v1/chat/completions")
    async def chat(raw: Request) -> Response:
        started = time.perf_counter()
        request = p.parse_request(await _json(raw))
        prompt = p.render_prompt(request)
        user_text = "\n".join(m.text() for m in request.messages if m.role in ("user", "system", "developer"))
        routed = resolve(request, user_text)
        params = sampling(request, prompt)
        name = routed.route.adapter
        if name not in runtime and not adapters.acquire(name):
            raise p.APIError(503, f"adapter {name} was just retired; retry", type="server_error")
        variant = routed.route.variant
        label = routed.reason.split(" ")[0]
        pieces = engine.generate(name, prompt, params)
        if request.stream:
            return StreamingResponse(
                _sse(request, routed, pieces, started),
                media_type="text/event-stream",
                headers=headers(routed),
            )
        try:
            text, last, first_at = "", Piece(""), None
            async for piece in pieces:
                first_at = first_at or time.perf_counter()
                text += piece.text
                last = piece
                _check_adapter(piece, name)
        finally:
            _release(name)
        message, finish = p.choice_message(h.parse_output(text), last.stopped)
        _observe(name, variant, label, started, first_at, last)
        body = {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": name,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": _usage(last),
        }
        return JSONResponse(body, headers=headers(routed))

    async def _sse(
        request: p.ChatRequest, routed: Routed, pieces: AsyncIterator[Piece], started: float
    ) -> AsyncIterator[str]:
        name, variant = routed.route.adapter, routed.route.variant
        base = {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": name,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            return (
                "data: "
                + json.dumps(
                    {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
                )
                + "\n\n"
            )

        parser = h.StreamParser()
        calls: dict[int, int] = {}  # message index -> tool call index
        last, first_at = Piece(""), None
        yield chunk({"role": "assistant", "content": ""})
        try:
            async for piece in pieces:
                first_at = first_at or time.perf_counter()
                _check_adapter(piece, name)
                last = piece
                for delta in parser.feed(piece.text):
                    out = _delta(delta, calls)
                    if out:
                        yield chunk(out)
            for delta in parser.finish():
                out = _delta(delta, calls)
                if out:
                    yield chunk(out)
        except Exception as exc:  # the stream has started: report in-band, as OpenAI does
            log.exception("stream failed")
            yield "data: " + json.dumps(p.APIError(500, str(exc), type="server_error").body()) + "\n\n"
            yield "data: [DONE]\n\n"
            return
        finally:
            _release(name)
        yield chunk({}, p.finish_reason(bool(calls), last.stopped))
        if (request.stream_options or {}).get("include_usage"):
            yield "data: " + json.dumps({**base, "choices": [], "usage": _usage(last)}) + "\n\n"
        _observe(name, variant, routed.reason.split(" ")[0], started, first_at, last)
        yield "data: [DONE]\n\n"

    def _release(name: str) -> None:
        if name not in runtime:
            adapters.release(name)

    def _observe(
        name: str, variant: str, route: str, started: float, first_at: float | None, last: Piece
    ) -> None:
        metrics.requests.labels(name, variant, route, "200").inc()
        metrics.latency.labels(name, variant).observe(time.perf_counter() - started)
        if first_at is not None:
            metrics.first_token.labels(name, variant).observe(first_at - started)
        metrics.tokens.labels(name, "prompt").inc(last.prompt_tokens)
        metrics.tokens.labels(name, "completion").inc(last.completion_tokens)

    @app.post("/v1/completions")
    async def completions(raw: Request) -> Response:
        body = await _json(raw)
        name, prompt = body.get("model"), body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise p.APIError(400, "prompt: a non-empty string is required", param="prompt")
        if name not in adapters.table.served and name not in runtime:
            raise p.APIError(404, f"the model {name!r} does not exist", param="model", code="model_not_found")
        max_tokens = int(body.get("max_tokens") or DEFAULT_MAX_TOKENS)
        if engine.count_tokens(prompt) + max_tokens > engine.max_context:
            raise p.APIError(
                400,
                f"prompt + max_tokens exceed the context of {engine.max_context} tokens",
                param="prompt",
                code="context_length_exceeded",
            )
        params = Sampling(max_tokens, float(body.get("temperature", 1.0)), float(body.get("top_p", 1.0)))
        pieces = engine.generate(str(name), prompt, params)
        header = {"x-moa-adapter": str(name)}
        if body.get("stream"):
            return StreamingResponse(
                _raw_sse(str(name), pieces), media_type="text/event-stream", headers=header
            )
        text, last = "", Piece("")
        async for piece in pieces:
            text, last = text + piece.text, piece
        finish = "stop" if last.stopped else "length"
        choice = {"index": 0, "text": text, "finish_reason": finish, "moa_adapter": last.adapter}
        return JSONResponse(
            {
                "id": "cmpl-" + uuid.uuid4().hex,
                "object": "text_completion",
                "model": name,
                "choices": [choice],
                "usage": _usage(last),
            },
            headers=header,
        )

    async def _raw_sse(name: str, pieces: AsyncIterator[Piece]) -> AsyncIterator[str]:
        async for piece in pieces:
            finish = ("stop" if piece.stopped else "length") if piece.done else None
            choice = {"index": 0, "text": piece.text, "finish_reason": finish, "moa_adapter": piece.adapter}
            data: dict[str, Any] = {"object": "text_completion", "model": name, "choices": [choice]}
            if piece.done:
                data["usage"] = _usage(piece)
            yield "data: " + json.dumps(data) + "\n\n"
        yield "data: [DONE]\n\n"

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        data = [
            {
                "id": AUTO,
                "object": "model",
                "created": 0,
                "owned_by": "moa",
                "root": engine.base,
                "parent": None,
                "description": "routes each request to its language's production adapter",
            }
        ]
        production = [(n, w) for n, w in sorted(adapters.table.served.items()) if w.variant == "production"]
        for name, wanted in production:  # a canary is reached through its language, never by name
            info = adapters.infos.get(name)
            data.append(
                {
                    "id": name,
                    "object": "model",
                    "created": adapters.created.get(name, 0),
                    "owned_by": "moa",
                    "root": str(wanted.artifact),
                    "parent": engine.base,
                    "language": wanted.language,
                    "digest": info.digest if info else None,
                    "checks": info.checks if info else [],
                }
            )
        for name, path in sorted(runtime.items()):
            data.append(
                {
                    "id": name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "moa",
                    "root": path,
                    "parent": engine.base,
                }
            )
        return {"object": "list", "data": data}

    @app.post("/v1/load_lora_adapter")
    async def load_lora(raw: Request) -> Response:
        _runtime_allowed()
        body = await _json(raw)
        name, path = body.get("lora_name"), body.get("lora_path")
        if not isinstance(name, str) or not isinstance(path, str):
            raise p.APIError(400, "lora_name and lora_path are required strings", param="lora_name")
        if name in runtime or name in adapters.table.served:
            raise p.APIError(400, f"the lora adapter {name!r} has already been loaded", param="lora_name")
        try:
            await engine.load(name, Path(path), body.get("digest"))
        except (AdapterCheckError, OSError, ValueError) as exc:
            raise p.APIError(400, str(exc), param="lora_path") from None
        runtime[name] = path
        return Response(f"Success: LoRA adapter '{name}' added successfully.", media_type="text/plain")

    @app.post("/v1/unload_lora_adapter")
    async def unload_lora(raw: Request) -> Response:
        _runtime_allowed()
        body = await _json(raw)
        name = body.get("lora_name")
        if name not in runtime:
            raise p.APIError(
                404, f"the lora adapter {name!r} is not loaded", param="lora_name", code="model_not_found"
            )
        await engine.unload(str(name))
        del runtime[str(name)]
        return Response(f"Success: LoRA adapter '{name}' removed successfully.", media_type="text/plain")

    def _runtime_allowed() -> None:
        if not settings.allow_runtime_lora:
            raise p.APIError(
                403,
                "runtime LoRA loading is off (start moa serve with --allow-runtime-lora)",
                type="permission_error",
            )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        served = adapters.names() + sorted(runtime)
        body = {
            "ready": bool(served),
            "adapters": served,
            "loaded": engine.loaded(),  # what the engine holds: a retired adapter leaves this list
            "refused": adapters.refused,
            "registry": adapters.source.description,
        }
        return JSONResponse(body, status_code=200 if served else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        metrics.loaded.set(len(adapters.names()) + len(runtime))
        metrics.refused.set(len(adapters.refused))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _check_adapter(piece: Piece, expected: str) -> None:
    """A piece generated under another adapter must never reach a client (the engine's lock
    should make this impossible; this is the last line of defence)."""
    if piece.adapter and piece.adapter != expected:
        raise RuntimeError(f"text generated under adapter {piece.adapter} for a request to {expected}")


def _delta(delta: h.Delta, calls: dict[int, int]) -> dict[str, Any] | None:
    """The OpenAI chunk delta of one parser delta (None when there is nothing to send)."""
    header = delta.header
    if header.is_tool_call:
        if delta.index not in calls:
            calls[delta.index] = len(calls)
            call = {
                "index": calls[delta.index],
                "id": p.new_call_id(),
                "type": "function",
                "function": {"name": header.function or str(header.recipient), "arguments": delta.text},
            }
            return {"tool_calls": [call]}
        return (
            {"tool_calls": [{"index": calls[delta.index], "function": {"arguments": delta.text}}]}
            if delta.text
            else None
        )
    if not delta.text:
        return None
    if header.channel == "analysis":
        return {"reasoning_content": delta.text}
    return {"content": delta.text}


def _usage(last: Piece) -> dict[str, int]:
    return {
        "prompt_tokens": last.prompt_tokens,
        "completion_tokens": last.completion_tokens,
        "total_tokens": last.prompt_tokens + last.completion_tokens,
    }


async def _json(raw: Request) -> Any:
    try:
        return await raw.json()
    except ValueError as exc:
        raise p.APIError(400, f"the request body is not valid JSON: {exc}") from None
