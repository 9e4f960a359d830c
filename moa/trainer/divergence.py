"""How far a policy has moved from its reference on a set of completions: the true KL and the
log-ratios that preference training moves.

Both the policy and the reference live in one PEFT model: the trained adapter and TRL's frozen
"ref" copy of the SFT adapter (`moa.trainer.loading.REFERENCE_ADAPTER`). For each completion
token, the model's next-token distributions under both adapters are compared over the whole
vocabulary:

    KL(pi || pi_SFT) at a position = sum_v pi(v | ctx) * (log pi(v | ctx) - log pi_SFT(v | ctx))

and `kl` is the mean over every completion token of the measured rows (chosen and rejected
alike), so it does not grow with completion length. The log-ratio of a completion is the sum
over its tokens of log pi(y_t | ctx) - log pi_SFT(y_t | ctx): IPO's implicit reward / beta.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Row = tuple[list[int], list[int]]  # (prompt ids, completion ids)


@dataclass(frozen=True)
class Drift:
    kl: float  # mean per completion token
    tokens: int
    log_ratios: tuple[float, ...]  # one per row, summed over its completion tokens


def truncate(prompt: list[int], completion: list[int], max_length: int | None) -> Row:
    """Keep the whole completion and the end of the prompt (as the IPO run truncates)."""
    if max_length is None or len(prompt) + len(completion) <= max_length:
        return prompt, completion
    keep = max(0, max_length - len(completion))
    return prompt[len(prompt) - keep :], completion[:max_length]


def _batch_log_probs(model: Any, rows: Sequence[Row], pad_id: int) -> tuple[Any, Any, Any]:
    """(log-probs [B, T-1, V] predicting each next token, target ids [B, T-1], completion mask)."""
    import torch

    device = next(model.parameters()).device
    width = max(len(p) + len(c) for p, c in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    completion = torch.zeros_like(ids)
    for i, (p, c) in enumerate(rows):
        ids[i, : len(p) + len(c)] = torch.tensor(p + c)
        attention[i, : len(p) + len(c)] = 1
        completion[i, len(p) : len(p) + len(c)] = 1
    ids, attention = ids.to(device), attention.to(device)
    logits = model(input_ids=ids, attention_mask=attention, use_cache=False).logits[:, :-1].float()
    return torch.log_softmax(logits, dim=-1), ids[:, 1:], completion[:, 1:].to(device).bool()


def drift(model: Any, rows: Sequence[Row], reference: str, pad_id: int, batch_size: int = 8) -> Drift:
    """KL to the `reference` adapter and per-row log-ratios, without gradients, in eval mode."""
    import torch
    from trl.trainer.utils import use_adapter

    was_training = model.training
    model.eval()
    kl_sum, tokens, ratios = 0.0, 0, []
    try:
        with torch.no_grad():
            for i in range(0, len(rows), batch_size):
                batch = rows[i : i + batch_size]
                logp, target, mask = _batch_log_probs(model, batch, pad_id)
                with use_adapter(model, adapter_name=reference):
                    ref_logp, _, _ = _batch_log_probs(model, batch, pad_id)
                per_position = (logp.exp() * (logp - ref_logp)).sum(-1)
                kl_sum += float(per_position[mask].sum())
                tokens += int(mask.sum())
                taken = (logp - ref_logp).gather(-1, target.unsqueeze(-1)).squeeze(-1)
                ratios += [float(r) for r in (taken * mask).sum(-1)]
    finally:
        model.train(was_training)
    return Drift(kl=kl_sum / tokens if tokens else 0.0, tokens=tokens, log_ratios=tuple(ratios))


def pair_rows(tokenizer: Any, pairs: Sequence[Any], max_length: int | None) -> tuple[list[Row], list[Row]]:
    """(chosen rows, rejected rows) of preference pairs, tokenized exactly (no special tokens added)."""

    def ids(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    chosen, rejected = [], []
    for pair in pairs:
        prompt = ids(pair.prompt)
        chosen.append(truncate(prompt, ids(pair.chosen), max_length))
        rejected.append(truncate(prompt, ids(pair.rejected), max_length))
    return chosen, rejected


def margin(model: Any, tokenizer: Any, pairs: Sequence[Any], reference: str, max_length: int | None) -> float:
    """Mean over pairs of (chosen log-ratio - rejected log-ratio): > 0 when the policy moved
    toward the chosen completions relative to the reference."""
    chosen, rejected = pair_rows(tokenizer, pairs, max_length)
    pad = tokenizer.pad_token_id
    up = drift(model, chosen, reference, pad).log_ratios
    down = drift(model, rejected, reference, pad).log_ratios
    return sum(c - r for c, r in zip(up, down, strict=True)) / max(1, len(pairs))
