"""Load the base checkpoint and the one LoRA adapter carried through SFT -> IPO -> GRPO.

Two backends, chosen once per process and logged with the reason:
  - `unsloth`: CUDA present and `unsloth` imports (the `cuda` extra) -> Unsloth loads the base
    as its GPT-OSS guide does (`FastLanguageModel.from_pretrained(..., dtype=None,
    load_in_4bit=..., full_finetuning=False)`: QLoRA in 4-bit through bitsandbytes when the spec
    asks for it); the LoRA itself is plain PEFT so the expert tensors get adapters the same way.
    Not run on the development machines (no GPU); `unsloth` is imported only on this path.
  - `hf`: plain transformers + PEFT in fp32 on CPU (bf16 on a GPU without Unsloth).
`MOA_BACKEND=hf` forces the plain path on a GPU; a GPU where `unsloth` does not import falls
back to it with the import error logged.

GPT-OSS's MoE experts are fused 3-D parameters (`mlp.experts.gate_up_proj`, `down_proj`), not
Linear modules, so PEFT adapts them through `target_parameters`. PEFT gives every expert its own
rank-r factors there (lora_A is r * num_experts wide), so the spec's r on 32 experts would make
one expert tensor's adapter 32x the size of a q_proj adapter; a rank pattern gives expert tensors
r // num_experts (at least 1) and scales their alpha with it, keeping alpha / r, so one fused
expert tensor costs about what one attention projection does.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moa.api.training import LoraSpec

log = logging.getLogger("moa.trainer")

ADAPTER_NAME = "default"
REFERENCE_ADAPTER = "ref"  # TRL's name for the frozen copy it uses as the reference policy


@dataclass(frozen=True)
class Backend:
    name: str  # "unsloth" | "hf"
    device: str  # "cuda" | "cpu"
    dtype: str  # "float32" | "bfloat16"
    load_in_4bit: bool

    def describe(self) -> str:
        quant = ", 4-bit" if self.load_in_4bit else ""
        return f"{self.name} on {self.device} ({self.dtype}{quant})"


def unsloth_missing() -> str | None:
    """Why Unsloth cannot be used here (None: it imports)."""
    try:
        import unsloth  # noqa: F401  (CUDA only; patches transformers on import)
    except Exception as exc:  # ImportError, or its own refusal (no GPU, unsupported torch)
        return f"{type(exc).__name__}: {exc}"
    return None


def bitsandbytes_missing() -> str | None:
    """Why 8-bit optimizers and 4-bit loading cannot be used here (None: bitsandbytes imports)."""
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def choose_backend(lora: LoraSpec) -> Backend:
    import torch

    if not torch.cuda.is_available():
        return Backend("hf", "cpu", "float32", False)
    if os.environ.get("MOA_BACKEND", "") == "hf":
        log.info("backend hf: MOA_BACKEND=hf")
        return Backend("hf", "cuda", "bfloat16", False)
    reason = unsloth_missing()
    if reason is not None:
        log.warning("backend hf: unsloth does not import (%s); install the `cuda` extra", reason)
        return Backend("hf", "cuda", "bfloat16", False)
    quantized = lora.load_in_4bit and bitsandbytes_missing() is None
    if lora.load_in_4bit and not quantized:
        log.warning("loadIn4bit: bitsandbytes does not import (%s); loading in bf16", bitsandbytes_missing())
    return Backend("unsloth", "cuda", "bfloat16", quantized)


def optimizer_for(requested: str, backend: Backend) -> str:
    """The spec's optimizer, or plain AdamW with a notice where it cannot run: the 8-bit optimizers
    need bitsandbytes on CUDA."""
    if "8bit" not in requested:
        return requested
    if backend.device != "cuda":
        reason = f"needs CUDA (running on {backend.device})"
    else:
        missing = bitsandbytes_missing()
        if missing is None:
            return requested
        reason = f"needs bitsandbytes ({missing}; install the `cuda` extra)"
    log.warning("optimizer %s %s: using adamw_torch", requested, reason)
    return "adamw_torch"


def load_base(path: str | Path, lora: LoraSpec, backend: Backend | None = None) -> tuple[Any, Any, Backend]:
    """(model, tokenizer, backend) for the base checkpoint at `path`."""
    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"no model at {path} (config.json missing): set spec.baseModel, or build a tiny one with "
            "`moa dev tiny-model --output DIR`"
        )
    backend = backend or choose_backend(lora)
    log.info("loading %s with backend %s", path, backend.describe())
    if backend.name == "unsloth":
        from unsloth import FastLanguageModel  # CUDA only; untested on the CPU development machines

        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=str(path),
            max_seq_length=lora.max_seq_length,
            load_in_4bit=backend.load_in_4bit,
            dtype=None,  # Unsloth picks bf16 where the GPU has it
            full_finetuning=False,  # LoRA / QLoRA, as its GPT-OSS guide loads it
        )
    else:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, backend.dtype), attn_implementation="eager"
        ).to(backend.device)
    if getattr(model.config, "moa_tiny_random", False):
        log.warning("%s is a TINY RANDOM model (moa dev tiny-model): results mean nothing", path)
    return model, tokenizer, backend


def lora_config(lora: LoraSpec, model_config: Any) -> Any:
    from peft import LoraConfig

    experts = int(getattr(model_config, "num_local_experts", 1) or 1)
    expert_r = max(1, lora.r // experts)
    patterns = {name.split(".")[-1]: expert_r for name in lora.target_parameters}
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        target_parameters=list(lora.target_parameters) or None,
        rank_pattern=patterns,
        alpha_pattern={k: lora.alpha * r / lora.r for k, r in patterns.items()},
        bias="none",
        task_type="CAUSAL_LM",
    )


@contextlib.contextmanager
def expert_patterns_accepted() -> Iterator[None]:
    """Silence PEFT's false alarm about our rank/alpha patterns, on creation and on every reload:
    PEFT applies them to target_parameters but checks them against target_modules only (the
    adapter weights' shapes show they apply; tests/unit/trainer/test_stages.py)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The following (rank|alpha)_pattern keys did not match")
        yield


def add_lora(model: Any, lora: LoraSpec) -> Any:
    """A fresh trainable adapter on the base (the start of SFT)."""
    from peft import get_peft_model

    config = lora_config(lora, model.config)
    with expert_patterns_accepted():
        model = get_peft_model(model, config, adapter_name=ADAPTER_NAME)
    log.info(
        "new LoRA r=%d alpha=%g on %s + %s",
        lora.r,
        lora.alpha,
        config.target_modules,
        config.target_parameters,
    )
    return model


def load_adapter(model: Any, adapter: str | Path, trainable: bool) -> Any:
    """The adapter of the previous stage on the base, to continue training (`trainable`) or to evaluate."""
    from peft import PeftModel

    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").exists():
        raise FileNotFoundError(
            f"no adapter at {adapter} (adapter_config.json missing): run the previous stage first"
        )
    with expert_patterns_accepted():
        model = PeftModel.from_pretrained(model, adapter, adapter_name=ADAPTER_NAME, is_trainable=trainable)
    log.info("loaded adapter %s (%s)", adapter, "trainable" if trainable else "frozen")
    return model


def trainable_parameters(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def limit_cpu_threads() -> None:
    """On CPU, honour MOA_TORCH_THREADS (tests set 2: the machine is shared)."""
    import torch

    threads = os.environ.get("MOA_TORCH_THREADS")
    if threads and not torch.cuda.is_available():
        torch.set_num_threads(max(1, int(threads)))


def is_finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
