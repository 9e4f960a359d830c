"""The one LoRA adapter carried through SFT -> IPO -> GRPO: its configuration and creation.

The base checkpoint and an existing adapter are loaded by `moa.agent.policy` (one loader for
training, sampling and serving).

GPT-OSS's MoE experts are fused 3-D parameters (`mlp.experts.gate_up_proj`, `down_proj`), not
Linear modules, so PEFT adapts them through `target_parameters`. PEFT gives every expert its own
rank-r factors there (lora_A is r * num_experts wide), so the spec's r on 32 experts would make
one expert tensor's adapter 32x the size of a q_proj adapter; a rank pattern gives expert tensors
r // num_experts (at least 1) and scales their alpha with it, keeping alpha / r, so one fused
expert tensor costs about what one attention projection does.
"""

from __future__ import annotations

import logging
from typing import Any

from moa.agent.policy import ADAPTER_NAME, Backend, expert_patterns_accepted, import_problem
from moa.api.training import LoraSpec

log = logging.getLogger("moa.trainer")

REFERENCE_ADAPTER = "ref"  # TRL's name for the frozen copy it uses as the reference policy


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


def add_lora(model: Any, lora: LoraSpec, seed: int = 0) -> Any:
    """A fresh trainable adapter on the base (the start of SFT), its random initialisation drawn
    from `seed`: the Trainer seeds only once it is built, after the adapter exists, so without
    this two runs of one spec start from different adapters (and a killed run's re-run could
    never be compared with an uninterrupted one)."""
    import torch
    from peft import get_peft_model

    torch.manual_seed(seed)
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


def optimizer_for(requested: str, backend: Backend) -> str:
    """The spec's optimizer, or plain AdamW with a notice where it cannot run: the 8-bit optimizers
    need bitsandbytes on CUDA."""
    if "8bit" not in requested:
        return requested
    if backend.device != "cuda":
        reason = f"needs CUDA (running on {backend.device})"
    else:
        problem = import_problem("bitsandbytes")
        if problem is None:
            return requested
        reason = f"needs bitsandbytes ({problem}; install the `cuda` extra)"
    log.warning("optimizer %s %s: using adamw_torch", requested, reason)
    return "adamw_torch"


def trainable_parameters(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
