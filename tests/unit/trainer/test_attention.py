"""moa's SDPA attention with sinks computes what transformers' eager gpt-oss attention does: the
same logits, the same gradients (sinks included) and the same greedy tokens, on a padded batch
longer than the sliding window, on the real tiny GptOss model."""

from __future__ import annotations

from pathlib import Path

import pytest


def loaded(path: Path, implementation: str):  # -> GptOssForCausalLM
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation=implementation)


@pytest.fixture(scope="module")
def batch():  # -> (input_ids, attention_mask): two rows, the second left-padded
    import torch

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 400, (2, 300), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, :120] = 0  # left padding, as the policy's batched generation pads
    return ids, mask


def test_logits_and_gradients_equal_eager(tiny_model: Path, batch) -> None:
    import torch

    from moa.agent import attention

    ids, mask = batch
    labels = ids.masked_fill(mask == 0, -100)
    results = {}
    for implementation in ("eager", attention.register()):
        model = loaded(tiny_model, implementation).train()
        out = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False)
        out.loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        results[implementation] = (out.logits.detach(), grads)
    (eager_logits, eager_grads), (ours_logits, our_grads) = results.values()
    real = mask.bool()
    assert torch.allclose(ours_logits[real], eager_logits[real], atol=1e-4, rtol=1e-4)
    assert eager_grads.keys() == our_grads.keys()
    assert any("sinks" in name for name in our_grads)
    for name, grad in eager_grads.items():
        assert torch.allclose(our_grads[name], grad, atol=1e-5, rtol=1e-3), name


def test_greedy_generation_with_a_cache_equals_eager(tiny_model: Path, batch) -> None:
    import torch

    from moa.agent import attention

    ids, mask = batch
    tokens = []
    for implementation in ("eager", attention.register()):
        model = loaded(tiny_model, implementation).eval()
        with torch.no_grad():
            out = model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False, pad_token_id=0
            )
        tokens.append(out[:, ids.shape[1] :])
    assert torch.equal(tokens[0], tokens[1])


def test_a_model_without_sinks_is_refused() -> None:
    import torch

    from moa.agent import attention

    q = torch.zeros(1, 2, 3, 8)
    with pytest.raises(ValueError, match="no sinks"):
        attention.sdpa_with_sinks(None, q, q, q, None, 1.0)
