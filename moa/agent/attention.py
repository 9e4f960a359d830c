"""gpt-oss attention with sinks through PyTorch's fused `scaled_dot_product_attention`.

transformers has no SDPA path for GptOss (`_supports_sdpa = False`) because of the sinks: a
learned logit per head that joins every query's softmax and carries no value. Its eager path
materialises every (head, query, key) score and then a max, a concatenation and a softmax over
them: on CPU at 2048 tokens that was most of a training step (bench/attention.py).

A sink is exactly one more key that every query sees. Prepend it: append a component 1 to each
query, give the prepended key the component sink / scaling (its other components 0) and every
real key a 0 there, and give it a zero value. Its score is then `sink` for every query, the
softmax over the real keys and the sink is eager's, and the value it adds is nothing. SDPA's fused
kernels (flash on CPU) compute that softmax without materialising it. The extra components are
padded to a multiple of 8 with zeros, which change no dot product, because the fused CUDA kernels
need that head size. Equal to eager within float rounding: tests/unit/agent/test_attention.py.
"""

from __future__ import annotations

from typing import Any

# No "sdpa" in the name: transformers would check it against GptOss's `_supports_sdpa = False`.
NAME = "moa_fused_sinks"


def register() -> str:
    """Register the attention and its mask with transformers (idempotent); the name to load with."""
    from transformers import AttentionInterface, AttentionMaskInterface

    AttentionInterface.register(NAME, sdpa_with_sinks)
    AttentionMaskInterface.register(NAME, explicit_mask)
    return NAME


def explicit_mask(*args: Any, **kwargs: Any) -> Any:
    """transformers' SDPA mask, always materialised: it would skip a plain causal mask for SDPA's
    `is_causal`, which aligns queries with the first keys, and the first key here is the sink."""
    from transformers.masking_utils import sdpa_mask

    kwargs["allow_is_causal_skip"] = False
    return sdpa_mask(*args, **kwargs)


def sdpa_with_sinks(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    scaling: float,
    dropout: float = 0.0,
    s_aux: Any = None,
    **_: Any,
) -> tuple[Any, None]:
    """Attention output (batch, queries, heads, head_dim) as transformers' attention interface
    returns it; no attention weights (they are never materialised)."""
    import torch
    import torch.nn.functional as F

    if s_aux is None:
        raise ValueError(f"{NAME} is gpt-oss attention: the model passed no sinks (s_aux)")
    batch, heads, _, head_dim = query.shape
    groups = heads // key.shape[1]
    key = key.repeat_interleave(groups, dim=1)
    value = value.repeat_interleave(groups, dim=1)
    width = -(-(head_dim + 1) // 8) * 8  # head_dim + the sink component, padded to a multiple of 8

    def widened(t: Any, component: Any = None) -> Any:
        """`t` with the extra components: zeros, the first of them `component` where given."""
        pad = t.new_zeros(*t.shape[:-1], width - head_dim)
        if component is not None:
            pad[..., 0] = component
        return torch.cat([t, pad], dim=-1)

    sink = (s_aux / scaling).to(key.dtype).reshape(1, heads, 1).expand(batch, heads, 1)
    q = widened(query, 1.0)
    k = torch.cat([widened(key.new_zeros(batch, heads, 1, head_dim), sink), widened(key)], dim=2)
    v = torch.cat([value.new_zeros(batch, heads, 1, width), widened(value)], dim=2)
    mask = attention_mask
    if mask is not None:  # the sink is seen by every query
        seen = mask.new_ones if mask.dtype == torch.bool else mask.new_zeros
        mask = torch.cat([seen(*mask.shape[:-1], 1), mask], dim=-1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=scaling)
    return out[..., :head_dim].transpose(1, 2).contiguous(), None
