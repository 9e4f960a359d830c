"""The upstream engine: forward to an OpenAI-compatible server that holds the adapters.

vLLM with `--enable-lora` (or another `moa serve`) generates; this process keeps the routing,
the Harmony rendering and parsing, the registry and the metrics. Adapters are addressed by
name as the `model` of a raw `/v1/completions` request (the prompt is already Harmony text;
special tokens are kept in the output), and loaded/unloaded there through the runtime LoRA
endpoints (`/v1/load_lora_adapter`, `/v1/unload_lora_adapter`; vLLM needs
VLLM_ALLOW_RUNTIME_LORA_UPDATING=True). The file-level checks (digest, tensors, rank) run
here; the upstream server runs the forward pass, so the smoke check is its load succeeding.

`vllm_args` prints the flags that start vLLM with the current production set instead.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from moa.serving.engine import AdapterCheckError, ArtifactInfo, Piece, Sampling, check_artifact

# vLLM accepts these values for --max-lora-rank.
VLLM_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class UpstreamEngine:
    name = "upstream"

    def __init__(self, url: str, base: str, *, max_context: int = 32768, api_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.base = base
        self.max_context = max_context
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=httpx.Timeout(600, connect=10)
        )
        self._loaded: set[str] = set()
        self._tokenizer: Any = None
        if (Path(base) / "tokenizer.json").exists():
            from tokenizers import Tokenizer

            self._tokenizer = Tokenizer.from_file(str(Path(base) / "tokenizer.json"))

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is None:  # no tokenizer here: the upstream server checks the length
            return 0
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    async def load(self, name: str, path: Path, digest: str | None) -> ArtifactInfo:
        info = check_artifact(path, digest)
        reply = await self.client.post(
            "/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(path)}
        )
        if reply.status_code >= 400 and "already" not in reply.text:
            raise AdapterCheckError(
                f"{self.url} refused to load {name} from {path}: {reply.status_code} {reply.text[:300]}"
            )
        info.checks.append(f"loaded by {self.url}")
        self._loaded.add(name)
        return info

    async def unload(self, name: str) -> None:
        await self.client.post("/v1/unload_lora_adapter", json={"lora_name": name})
        self._loaded.discard(name)

    def loaded(self) -> list[str]:
        return sorted(self._loaded)

    async def generate(self, adapter: str, prompt: str, sampling: Sampling) -> AsyncIterator[Piece]:
        body = {
            "model": adapter,
            "prompt": prompt,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
            "skip_special_tokens": False,  # vLLM: keep the Harmony tokens in the text
        }
        async with self.client.stream("POST", "/v1/completions", json=body) as reply:
            if reply.status_code >= 400:
                detail = (await reply.aread()).decode(errors="replace")[:500]
                raise RuntimeError(f"upstream {self.url} answered {reply.status_code}: {detail}")
            finish: str | None = None
            usage: dict[str, int] = {}
            served_by = adapter
            async for line in reply.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[len("data: ") :])
                usage = event.get("usage") or usage
                for choice in event.get("choices", []):
                    served_by = choice.get("moa_adapter") or served_by
                    finish = choice.get("finish_reason") or finish
                    if choice.get("text"):
                        yield Piece(choice["text"], adapter=served_by)
        yield Piece(
            "",
            done=True,
            stopped=finish == "stop",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            adapter=served_by,
        )

    async def close(self) -> None:
        await self.client.aclose()


def vllm_args(base: str, adapters: dict[str, Path]) -> list[str]:
    """vLLM flags that serve `base` with these adapters (name -> folder) by name."""
    ranks = [check_artifact(path, None).rank for path in adapters.values()]
    highest = max(ranks, default=8)
    rank = next((r for r in VLLM_RANKS if r >= highest), highest)
    args = [
        "--model",
        base,
        "--enable-lora",
        "--max-loras",
        str(max(1, len(adapters))),
        "--max-lora-rank",
        str(rank),
    ]
    if adapters:
        args += ["--lora-modules", *(f"{name}={path}" for name, path in sorted(adapters.items()))]
    return args


__all__ = ["AdapterCheckError", "UpstreamEngine", "vllm_args"]
