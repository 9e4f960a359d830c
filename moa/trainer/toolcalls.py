"""Tool-call format accuracy: can the model, given an agent conversation up to the point where
it should call a tool, write a well-formed call to a known tool with schema-valid arguments?

Measured by generating (greedy, the agent's own `Policy`) on held-out prompts and parsing the result with the Harmony
codec, so it is the same check the data gate and the GRPO reward apply to model output.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from moa.agent.policy import Policy
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
    policy = Policy(model, tokenizer, 0.0, max_new_tokens, max_length, batch_size=2)
    fits = [p for p in prompts if policy.fits(p)]
    if len(fits) < len(prompts):
        log.info(
            "tool-call format: %d of %d prompts longer than %d tokens left out",
            len(prompts) - len(fits),
            len(prompts),
            max_length,
        )
    prompts = fits[:limit]
    if not prompts:
        return FormatResult(0, 0, ())
    completions = policy.complete(prompts)
    valid = sum(is_valid_tool_call(c) for c in completions)
    log.info("tool-call format: %d/%d valid", valid, len(prompts))
    return FormatResult(len(prompts), valid, tuple(completions[:3]))
