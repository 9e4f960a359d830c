"""A policy: the base checkpoint with a LoRA adapter, writing the agent's turns.

Loading lives here, below the trainer, because every user of a policy loads it the same way:
preference sampling (datagen), SFT/IPO/GRPO and eval (trainer), and serving. Heavy imports
(torch, transformers, peft, unsloth) happen inside the functions only.

Two backends, chosen once per process and logged with the reason:
  - `unsloth`: CUDA present and `unsloth` imports (the `cuda` extra) -> Unsloth loads the base
    as its GPT-OSS guide does (`FastLanguageModel.from_pretrained(..., dtype=None,
    load_in_4bit=..., full_finetuning=False)`: QLoRA in 4-bit through bitsandbytes when the spec
    asks for it and bitsandbytes imports); the LoRA itself is plain PEFT so the expert tensors get
    adapters the same way. Not run on the development machines (no GPU); `unsloth` is imported
    only on this path.
  - `hf`: plain transformers + PEFT in fp32 on CPU (bf16 on a GPU without Unsloth).
`MOA_BACKEND=hf` forces the plain path on a GPU; a GPU where `unsloth` does not import falls
back to it with the import error logged. A new adapter for training is
`moa.trainer.loading.add_lora`.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moa.api.training import LoraSpec
from moa.harmony import tokens as T

log = logging.getLogger("moa.agent")

ADAPTER_NAME = "default"


@dataclass(frozen=True)
class Backend:
    name: str  # "unsloth" | "hf"
    device: str  # "cuda" | "cpu"
    dtype: str  # "float32" | "bfloat16"
    load_in_4bit: bool

    def describe(self) -> str:
        quant = ", 4-bit" if self.load_in_4bit else ""
        return f"{self.name} on {self.device} ({self.dtype}{quant})"


def import_problem(module: str) -> str | None:
    """Why `module` cannot be used here (None: it imports). Unsloth refuses on import without a
    supported GPU; bitsandbytes without its CUDA library."""
    try:
        importlib.import_module(module)
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
    problem = import_problem("unsloth")
    if problem is not None:
        log.warning("backend hf: unsloth does not import (%s); install the `cuda` extra", problem)
        return Backend("hf", "cuda", "bfloat16", False)
    quantized = lora.load_in_4bit and import_problem("bitsandbytes") is None
    if lora.load_in_4bit and not quantized:
        log.warning(
            "loadIn4bit: bitsandbytes does not import (%s); loading in bf16", import_problem("bitsandbytes")
        )
    return Backend("unsloth", "cuda", "bfloat16", quantized)


@contextlib.contextmanager
def expert_patterns_accepted() -> Iterator[None]:
    """Silence PEFT's false alarm about moa's rank/alpha patterns, on creation and on every reload:
    PEFT applies them to target_parameters but checks them against target_modules only (the
    adapter weights' shapes show they apply: tests/unit/trainer/test_stages.py)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The following (rank|alpha)_pattern keys did not match")
        yield


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
    model: Any
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

        from moa.agent import attention

        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, backend.dtype), attn_implementation=attention.register()
        )
        model = model.to(backend.device)
    if getattr(model.config, "moa_tiny_random", False):
        # Random, or pretrained for minutes (--pretrain): either way a toy, whose figures show that
        # the stages run and learn, not what a real base model would reach.
        log.warning("%s is a TINY model (moa dev tiny-model): its figures are not a real model's", path)
    return model, tokenizer, backend


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


def limit_cpu_threads() -> None:
    """On CPU, honour MOA_TORCH_THREADS (tests set 2: the machine is shared)."""
    import torch

    threads = os.environ.get("MOA_TORCH_THREADS")
    if threads and not torch.cuda.is_available():
        torch.set_num_threads(max(1, int(threads)))


@dataclass
class Policy:
    """A model (base + adapter) that writes assistant turns: sampled at `temperature`, greedy at 0."""

    model: Any
    tokenizer: Any
    temperature: float
    max_new_tokens: int
    max_length: int | None = None  # prompt + completion tokens the model takes (None: no limit)
    batch_size: int = 8

    def fits(self, prompt: str) -> bool:
        if self.max_length is None:
            return True
        tokens = len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        return tokens + self.max_new_tokens <= self.max_length

    def complete(self, prompts: Sequence[str]) -> list[str]:
        """Completions with their special tokens, each ending at <|call|> / <|return|> (or cut)."""
        tok = self.tokenizer
        contexts = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        return [decode(tok, ids) for ids in self.sample(contexts)]

    def sample(self, contexts: Sequence[Sequence[int]], max_new_tokens: int | None = None) -> list[list[int]]:
        """The token ids the model writes after each context, up to its first <|call|> /
        <|return|> (or cut at `max_new_tokens`, default the policy's): exactly what was sampled,
        so a trainer can score these very tokens. Leaves the model in the mode it found it in."""
        import torch

        tok = self.tokenizer
        stop = [tok.convert_tokens_to_ids(t) for t in (T.CALL, T.RETURN)]
        device = next(self.model.parameters()).device
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": self.temperature}
            if self.temperature > 0
            else {"do_sample": False}
        )
        side, tok.padding_side = tok.padding_side, "left"
        training = self.model.training
        out: list[list[int]] = []
        try:
            self.model.eval()
            for i in range(0, len(contexts), self.batch_size):
                rows = [{"input_ids": list(c)} for c in contexts[i : i + self.batch_size]]
                batch = {k: v.to(device) for k, v in tok.pad(rows, return_tensors="pt").items()}
                with torch.no_grad():
                    ids = self.model.generate(
                        **batch,
                        max_new_tokens=max_new_tokens or self.max_new_tokens,
                        **sampling,
                        eos_token_id=stop,
                        pad_token_id=tok.pad_token_id,
                        output_router_logits=False,
                    )
                for row in ids[:, batch["input_ids"].shape[1] :].tolist():
                    end = next((k + 1 for k, t in enumerate(row) if t in stop), len(row))
                    out.append(row[:end])
        finally:
            tok.padding_side = side
            self.model.train(training)
        return out


def decode(tokenizer: Any, ids: Sequence[int]) -> str:
    """Token ids to text with the Harmony special tokens kept and padding dropped."""
    text: str = tokenizer.decode(list(ids), skip_special_tokens=False)
    return text.replace(tokenizer.pad_token, "")
