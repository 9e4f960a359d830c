"""LoRA training throughput on the real GPT-OSS-20B shape: Unsloth vs plain transformers + PEFT.

    .venv/bin/python bench/train_throughput.py [--seq-len 4096] [--steps 5] [--warmup 2] [--layers 24]
                                               [--backends unsloth,hf] [--load-in-4bit]

Both sides train the same LoRA (moa's `lora_config`: attention projections plus the fused expert
tensors through target_parameters, the spec's default r/alpha) on the same random token batches
of `--seq-len` tokens, for `--steps` timed optimizer steps after `--warmup` untimed ones, in bf16 on
one GPU. The model is the GPT-OSS-20B configuration (`GptOssConfig` defaults: 24 layers, hidden
2880, 32 experts top-4, 201,088-token vocabulary) with RANDOM weights: no download, nothing to
learn; throughput and memory do not depend on the values. Reported per backend: tokens/s and peak
GPU memory (torch.cuda.max_memory_allocated), and the ratio Unsloth / HF measured in this run.

It needs CUDA. Without it the script checks its arguments, says what it would run, and exits 2
("refused: no CUDA device"): the development machines have no GPU, and no figure is made up.
`--layers` shortens the model (same width) for a smaller GPU; the report says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

BACKENDS = ("unsloth", "hf")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seq-len", type=int, default=4096)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--layers", type=int, default=24, help="Transformer layers (GPT-OSS-20B: 24).")
    p.add_argument("--backends", default="unsloth,hf", help="Comma-separated: unsloth, hf.")
    p.add_argument("--load-in-4bit", action="store_true", help="QLoRA: base weights in 4-bit (bitsandbytes).")
    args = p.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in args.backends if b not in BACKENDS]
    if unknown or not args.backends:
        p.error(
            f"--backends: unknown {unknown or 'none given'}; expected a comma-separated subset of {BACKENDS}"
        )
    for name in ("seq_len", "steps", "layers"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1 (got {getattr(args, name)})")
    if args.warmup < 0:
        p.error(f"--warmup must be >= 0 (got {args.warmup})")
    return args


def model_config(layers: int) -> Any:
    from transformers import GptOssConfig

    config = GptOssConfig(num_hidden_layers=layers)  # the defaults are gpt-oss-20b's shape
    config.layer_types = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)]
    return config


def build(backend: str, config: Any, seq_len: int, load_in_4bit: bool) -> Any:
    """A random-init GPT-OSS model with moa's LoRA on it, on the GPU."""
    import tempfile

    import torch

    from moa.api.training import LoraSpec
    from moa.trainer.loading import add_lora

    lora = LoraSpec(max_seq_length=seq_len, load_in_4bit=load_in_4bit)
    if backend == "unsloth":
        from transformers import GptOssForCausalLM
        from unsloth import FastLanguageModel

        # Unsloth loads from a folder: write the random model once (bf16), as a checkpoint would be.
        folder = tempfile.mkdtemp(prefix="gptoss-random-")
        GptOssForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
        model, _ = FastLanguageModel.from_pretrained(
            model_name=folder,
            max_seq_length=seq_len,
            load_in_4bit=load_in_4bit,
            dtype=None,
            full_finetuning=False,
        )
    else:
        from transformers import GptOssForCausalLM

        model = GptOssForCausalLM(config).to(dtype=torch.bfloat16, device="cuda")
    model.gradient_checkpointing_enable()
    model.config.use_cache = False
    return add_lora(model, lora)


def measure(backend: str, args: argparse.Namespace) -> dict[str, float]:
    import torch

    config = model_config(args.layers)
    torch.cuda.reset_peak_memory_stats()
    model = build(backend, config, args.seq_len, args.load_in_4bit)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    generator = torch.Generator(device="cuda").manual_seed(0)

    def step() -> None:
        ids = torch.randint(0, config.vocab_size, (1, args.seq_len), device="cuda", generator=generator)
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    result = {
        "tokens_per_s": args.steps * args.seq_len / seconds,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
        "seconds": seconds,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    plan = (
        f"{'+'.join(args.backends)}: GPT-OSS-20B shape ({args.layers} layers), random init, LoRA, "
        f"seq {args.seq_len}, {args.steps} timed steps after {args.warmup} warmup"
        + (", base in 4-bit" if args.load_in_4bit else ", base in bf16")
    )
    import torch

    if not torch.cuda.is_available():
        print(f"would run: {plan}", file=sys.stderr)
        print(
            "refused: no CUDA device (this benchmark measures GPU training; no figure without one)",
            file=sys.stderr,
        )
        return 2
    results: dict[str, Any] = {"plan": plan, "device": torch.cuda.get_device_name(0)}
    for backend in args.backends:
        print(f"measuring {backend} ...", file=sys.stderr, flush=True)
        results[backend] = measure(backend, args)
        torch.cuda.empty_cache()  # the next backend starts from a clean device
    if "unsloth" in results and "hf" in results:
        results["unsloth_over_hf_tokens_per_s"] = (
            results["unsloth"]["tokens_per_s"] / results["hf"]["tokens_per_s"]
        )
        results["unsloth_over_hf_peak_memory"] = (
            results["unsloth"]["peak_memory_gib"] / results["hf"]["peak_memory_gib"]
        )
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
