"""gpt-oss attention on CPU: transformers' eager path vs moa's fused SDPA with sinks
(`moa.agent.attention`), one forward + backward of the tiny pretraining-shaped model per
sequence length, in the same run. Prints seconds per step, tokens/s and the ratio.

    .venv/bin/python bench/attention.py [--lengths 512,1024,2048] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="512,1024,2048")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from moa.agent import attention
    from moa.dev.tiny_model import PRETRAIN_SHAPE
    from moa.trainer import tiny_model

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        shape = PRETRAIN_SHAPE
        path = tiny_model.build(
            Path(tmp) / "model",
            layers=shape["layers"],
            hidden=shape["hidden"],
            experts=shape["experts"],
            vocab_size=shape["vocab_size"],
        )
        models = {
            impl: AutoModelForCausalLM.from_pretrained(
                path, dtype=torch.float32, attn_implementation=impl
            ).train()
            for impl in ("eager", attention.register())
        }
        print("| tokens | eager s/step | fused s/step | eager tokens/s | fused tokens/s | speed-up |")
        print("|---|---|---|---|---|---|")
        for length in (int(n) for n in args.lengths.split(",")):
            ids = torch.randint(10, 400, (1, length), generator=torch.Generator().manual_seed(0))
            seconds = {}
            for impl, model in models.items():
                model(input_ids=ids, labels=ids, use_cache=False).loss.backward()  # warm-up
                started = time.perf_counter()
                for _ in range(args.repeats):
                    model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
                    model.zero_grad(set_to_none=True)
                seconds[impl] = (time.perf_counter() - started) / args.repeats
            eager, fused = seconds["eager"], seconds[attention.NAME]
            print(
                f"| {length} | {eager:.3f} | {fused:.3f} | {length / eager:,.0f} | {length / fused:,.0f} "
                f"| {eager / fused:.2f}x |"
            )


if __name__ == "__main__":
    main()
