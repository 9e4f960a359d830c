"""What `moa serve` costs and buys, against baselines measured in the same run (tiny model, CPU).

    .venv/bin/python bench/serving.py [--requests 32] [--tokens 16] [--swaps 200]

1. adapter swap: `set_adapter` between four loaded adapters, p50/p99 (target p50 < 5 ms);
   baseline: `set_adapter` to the adapter already active.
2. router overhead: one request at a time through `moa serve` (HTTP, Harmony render + parse,
   routing, SSE-free JSON) vs bare `generate` of the same prompt and token count in this
   process (target <= 10 %).
3. mixed-language throughput: N concurrent requests over four adapters through the in-process
   engine with micro-batching vs naive swap-per-request (max batch 1, no window) (target >= 2x).

Adapters are created here (PEFT LoRA on attention and expert tensors, lora_B drawn at random so
each changes the logits): bench needs distinct adapters, not trained ones. The model is the
TINY RANDOM one (`moa dev tiny-model`): absolute times say nothing about a 20B model, the
ratios say what the serving layer adds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
LANGUAGES = ("python", "rust", "typescript", "go")
PROMPT_TEXT = "Write a function that adds two numbers."


def make_adapters(base: Path, root: Path) -> dict[str, Path]:
    import torch
    from transformers import AutoModelForCausalLM

    from moa.api.adapter import Adapter, AdapterSpec, AdapterStatus, artifact_digest
    from moa.api.training import LoraSpec
    from moa.trainer.loading import add_lora

    out = {}
    for i, language in enumerate(LANGUAGES):
        torch.manual_seed(i)
        model = add_lora(AutoModelForCausalLM.from_pretrained(base), LoraSpec(r=8, alpha=16, dropout=0.0))
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.05)
        folder = root / "adapters" / language
        model.save_pretrained(folder)
        out[language] = folder
        adapter = Adapter(
            metadata={"name": f"{language}-coding"},
            spec=AdapterSpec(
                language=language,
                base_model=str(base),
                artifact=str(folder),
                stage="production",
                digest=artifact_digest(folder),
            ),
            status=AdapterStatus(stage="production"),
        )
        registry = root / "registry" / "adapters"
        registry.mkdir(parents=True, exist_ok=True)
        (registry / f"{language}-coding.yaml").write_text(yaml.safe_dump(adapter.to_yaml_dict()))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_swap(engine: object, swaps: int) -> None:
    peft = engine._peft  # type: ignore[attr-defined]
    names = [f"{language}-coding" for language in LANGUAGES]
    switched, same = [], []
    for i in range(swaps):
        started = time.perf_counter()
        peft.set_adapter(names[i % len(names)])
        switched.append(time.perf_counter() - started)
        started = time.perf_counter()
        peft.set_adapter(names[i % len(names)])
        same.append(time.perf_counter() - started)
    ms = [s * 1000 for s in switched]
    base = [s * 1000 for s in same]
    print(
        f"swap set_adapter: p50 {percentile(ms, 0.5):.3f} ms, p99 {percentile(ms, 0.99):.3f} ms "
        f"(baseline, same adapter: p50 {percentile(base, 0.5):.3f} ms); target p50 < 5 ms"
    )


async def run_engine(engine: object, prompts: list[tuple[str, str]], tokens: int) -> tuple[float, int]:
    from moa.serving.engine import Sampling

    async def one(adapter: str, prompt: str) -> int:
        count = 0
        async for piece in engine.generate(adapter, prompt, Sampling(tokens, 0.0)):  # type: ignore[attr-defined]
            count = piece.completion_tokens or count
        return count

    started = time.perf_counter()
    counts = await asyncio.gather(*(one(a, p) for a, p in prompts))
    return time.perf_counter() - started, sum(counts)


def bench_batching(base: Path, root: Path, requests: int, tokens: int, prompt: str) -> object:
    from moa.serving.inprocess import InProcessEngine

    mixed = [(f"{LANGUAGES[i % 4]}-coding", prompt) for i in range(requests)]
    results = {}
    keep = None
    for label, window, batch in (("naive swap-per-request", 0.0, 1), ("micro-batching", 5.0, 8)):
        engine = InProcessEngine(base, window_ms=window, max_batch=batch)

        async def go(engine: InProcessEngine = engine) -> tuple[float, int]:
            for language in LANGUAGES:
                await engine.load(f"{language}-coding", root / "adapters" / language, None)
            await run_engine(engine, mixed[:4], 2)  # warm-up
            return await run_engine(engine, mixed, tokens)

        seconds, generated = asyncio.run(go())
        results[label] = generated / seconds
        print(
            f"{label}: {requests} mixed requests, {generated} tokens in {seconds:.2f} s = {results[label]:.1f} tok/s"
        )
        keep = engine
    ratio = results["micro-batching"] / results["naive swap-per-request"]
    print(f"micro-batching / naive: {ratio:.2f}x (target >= 2x)")
    return keep


def bench_router(base: Path, root: Path, engine: object, requests: int, tokens: int, prompt: str) -> None:
    import torch

    peft, tok = engine._peft, engine.tokenizer  # type: ignore[attr-defined]
    port = 18000 + int(time.time()) % 1000
    env = {"PYTHONPATH": str(REPO), "MOA_TORCH_THREADS": "2", "PATH": "/usr/bin:/bin"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "moa.cli",
            "serve",
            "--workdir",
            str(root),
            "--port",
            str(port),
            "--window-ms",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        body = {
            "model": "python-coding",
            "messages": [{"role": "user", "content": PROMPT_TEXT}],
            "max_tokens": tokens,
            "temperature": 0,
        }
        # Interleaved, so that both sides see the same load on a shared machine; the bare side
        # generates exactly as many tokens as the server just did.
        peft.set_adapter("python-coding")
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
        served, bare = [], []
        for _ in range(requests):
            started = time.perf_counter()
            reply = httpx.post(url + "/v1/chat/completions", json=body, timeout=120)
            served.append(time.perf_counter() - started)
            reply.raise_for_status()
            got = reply.json()["usage"]["completion_tokens"]
            started = time.perf_counter()
            with torch.no_grad():
                peft.generate(
                    **ids,
                    max_new_tokens=got,
                    min_new_tokens=got,
                    do_sample=False,
                    pad_token_id=tok.pad_token_id,
                )
            bare.append(time.perf_counter() - started)
    finally:
        server.terminate()
        server.wait(30)
    b, s = statistics.median(bare), statistics.median(served)
    print(
        f"router: median {s * 1000:.1f} ms through moa serve vs {b * 1000:.1f} ms bare generate "
        f"({got} tokens each): overhead {(s - b) / b:+.1%} (target <= 10 %)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--swaps", type=int, default=200)
    args = parser.parse_args()
    from moa.serving.protocol import parse_request, render_prompt
    from moa.trainer.tiny_model import build

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = build(root / "tiny")
        make_adapters(base, root)
        prompt = render_prompt(parse_request({"messages": [{"role": "user", "content": PROMPT_TEXT}]}))
        print(f"TINY RANDOM model, CPU, {args.requests} requests x {args.tokens} tokens")
        engine = bench_batching(base, root, args.requests, args.tokens, prompt)
        bench_swap(engine, args.swaps)
        bench_router(base, root, engine, max(4, args.requests // 4), args.tokens, prompt)


if __name__ == "__main__":
    main()
