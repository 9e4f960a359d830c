"""Tool-call format accuracy: can the model, given an agent conversation up to the point where
it should call a tool, write a well-formed call to a known tool with schema-valid arguments?

Measured by generating (greedy) on held-out prompts and parsing the result with the Harmony
codec, so it is the same check the data gate and the GRPO reward apply to model output.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from moa.harmony import tokens as T
from moa.trainer.data import is_valid_tool_call

log = logging.getLogger("moa.trainer")


@dataclass(frozen=True)
class FormatResult:
    prompts: int
    valid: int
    samples: tuple[str, ...]  # a few completions, for the report

    @property
    def accuracy(self) -> float | None:
        return self.valid / self.prompts if self.prompts else None


def generate(
    model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int, batch_size: int = 8
) -> list[str]:
    """Greedy completions (special tokens kept), stopping at <|call|> or <|return|>."""
    import torch

    stop = [tokenizer.convert_tokens_to_ids(t) for t in (T.CALL, T.RETURN)]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    out: list[str] = []
    try:
        model.eval()
        for i in range(0, len(prompts), batch_size):
            batch = tokenizer(
                prompts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
            )
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.no_grad():
                ids = model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    eos_token_id=stop,
                    pad_token_id=tokenizer.pad_token_id,
                    output_router_logits=False,  # TRL turns it on for the MoE aux loss; no use here
                )
            for row in ids[:, batch["input_ids"].shape[1] :]:
                text = tokenizer.decode(row, skip_special_tokens=False)
                out.append(text.replace(tokenizer.pad_token, ""))
    finally:
        tokenizer.padding_side = side
    return out


def format_accuracy(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    max_new_tokens: int = 256,
    max_length: int | None = None,
    limit: int | None = None,
) -> FormatResult:
    """Share of held-out prompts whose greedy completion is a valid tool call, on the first
    `limit` prompts that fit.

    Prompts that do not fit `max_length` (the LoRA's max_seq_length) with the generation budget
    are left out and logged: padding a batch to a too-long prompt once asked CPU eager attention
    for 37 GB. The limit applies after that, so a short context still gets `limit` prompts."""
    if max_length is not None:
        fits = [
            p
            for p in prompts
            if len(tokenizer(p, add_special_tokens=False)["input_ids"]) + max_new_tokens <= max_length
        ]
        if len(fits) < len(prompts):
            log.info(
                "tool-call format: %d of %d prompts longer than %d tokens left out",
                len(prompts) - len(fits),
                len(prompts),
                max_length,
            )
        prompts = fits
    prompts = prompts[:limit]
    if not prompts:
        return FormatResult(0, 0, ())
    completions = generate(model, tokenizer, prompts, max_new_tokens, batch_size=2)
    valid = sum(is_valid_tool_call(c) for c in completions)
    log.info("tool-call format: %d/%d valid", valid, len(prompts))
    return FormatResult(len(prompts), valid, tuple(completions[:3]))
