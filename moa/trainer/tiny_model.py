"""`moa dev tiny-model`: a tiny, random GPT-OSS-architecture checkpoint with its own tokenizer.

No machine here reaches a model hub, yet every trainer stage must run end to end in tests and
demos. This builds the real architecture (`GptOssForCausalLM`: MoE experts with top-k routing,
alternating sliding/full attention, attention sinks) at toy size, with a byte-level BPE tokenizer
trained here on code snippets and Harmony agent texts, carrying the Harmony special tokens as
single tokens. It is seeded and deterministic, and labelled as random everywhere it shows up
(`"moa_tiny_random": true` in config.json, a README in the folder): it knows nothing.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moa import harmony as h
from moa.harmony import tokens as T

PAD = "<|endoftext|>"
# gpt-oss stops on <|return|> (end of the final answer) and <|call|> (a tool call); <|endoftext|> pads.
SPECIAL_TOKENS = [PAD, T.START, T.END, T.MESSAGE, T.CHANNEL, T.CONSTRAIN, T.RETURN, T.CALL]
STOP_TOKENS = (T.RETURN, T.CALL, PAD)
LM_HEAD_STD = 0.5

# Renders {"role", "content", optional "channel"/"recipient"/"content_type"/"name"} messages in
# Harmony; `add_generation_prompt` opens the assistant's turn (what `moa.harmony.render` calls
# the "completion" mode).
CHAT_TEMPLATE = (
    "{%- for m in messages -%}"
    "<|start|>{{ m['name'] if m['role'] == 'tool' and m.get('name') else m['role'] }}"
    "{%- if m.get('channel') and m['role'] == 'assistant' -%}<|channel|>{{ m['channel'] }}"
    "{%- if m.get('recipient') %} to={{ m['recipient'] }}{% endif -%}"
    "{%- elif m.get('channel') -%}{% if m.get('recipient') %} to={{ m['recipient'] }}{% endif %}"
    "<|channel|>{{ m['channel'] }}"
    "{%- endif -%}"
    "{%- if m.get('content_type') %} <|constrain|>{{ m['content_type'] }}{% endif -%}"
    "<|message|>{{ m['content'] }}"
    "{%- if m['role'] == 'assistant' and m.get('recipient') -%}<|call|>{%- else -%}<|end|>{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|start|>assistant{%- endif -%}"
)


def corpus(seed: int = 0, conversations: int = 60) -> list[str]:
    """Training text for the tokenizer: every plugin's code samples and Harmony agent texts."""
    from moa.languages.registry import plugins

    rng = random.Random(seed)
    langs = {name: p for name, p in sorted(plugins().items()) if p.code_samples}
    texts = [s for p in langs.values() for s in p.code_samples]
    system = h.system_message()
    developer = h.developer_message("Fix the failing test.", h.AGENT_TOOLS)
    for i in range(conversations):
        plugin = langs[rng.choice(sorted(langs))]
        code = rng.choice(plugin.code_samples)
        path = f"src/mod_{i % 7}{plugin.extensions[0]}"
        messages = [
            system,
            developer,
            h.user(f"The tests fail in {path}. Please fix it."),
            h.analysis("Let me read the file first."),
            h.tool_call("read_file", {"path": path}),
            h.tool_result("read_file", code),
            h.tool_call("run_tests", {}),
            h.tool_result("run_tests", "1 failed, 3 passed"),
            h.final("Fixed the bug; all tests pass."),
        ]
        texts.append(h.render(h.Conversation(messages), "training"))
    return texts


def build_tokenizer(
    vocab_size: int = 2048, seed: int = 0, extra: Sequence[str] = ()
):  # -> PreTrainedTokenizerFast
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([*corpus(seed), *extra], trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=T.RETURN,
        pad_token=PAD,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (PAD, T.RETURN)],
        model_max_length=4096,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build(
    output: Path,
    seed: int = 0,
    layers: int = 2,
    hidden: int = 64,
    experts: int = 4,
    vocab_size: int = 2048,
    tokenizer_text: Sequence[str] = (),
    head_std: float | None = LM_HEAD_STD,
) -> Path:
    """Write the tiny checkpoint and tokenizer to `output` (replacing it atomically);
    `tokenizer_text` joins the tokenizer's training text (the pretraining corpus, when there is one);
    `head_std` None keeps the default initialisation of the output head (a model about to be
    pretrained learns its head)."""
    import torch
    from transformers import GenerationConfig, GptOssConfig, GptOssForCausalLM

    torch.manual_seed(seed)
    tokenizer = build_tokenizer(vocab_size, seed, tokenizer_text)
    stop_ids = [tokenizer.convert_tokens_to_ids(t) for t in STOP_TOKENS]
    config = GptOssConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden // 4,
        num_local_experts=experts,
        num_experts_per_tok=2,
        layer_types=["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)],
        sliding_window=64,
        max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=stop_ids,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    config.moa_tiny_random = True
    model = GptOssForCausalLM(config).eval()
    if head_std is not None:
        # The default init (std 0.02) leaves a 64-wide frozen head unable to produce anything but
        # near-uniform next-token distributions, so no LoRA could learn on it; std 0.5 gives the
        # head the logit range a trained model has. (A pretrained tiny model learns its head.)
        with torch.no_grad():
            model.lm_head.weight.normal_(0.0, head_std)
    model.generation_config = GenerationConfig(
        eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )

    output = Path(output)
    tmp = output.with_name(output.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    params = sum(p.numel() for p in model.parameters())
    (tmp / "README.md").write_text(
        "# moa tiny random model\n\n"
        "A RANDOM, UNTRAINED GPT-OSS-architecture checkpoint built by `moa dev tiny-model` for tests and\n"
        "demos on machines without the real weights. It knows nothing; its outputs mean nothing.\n\n"
        f"- layers: {layers}, hidden size: {hidden}, experts: {experts} (top-2), parameters: {params:,}\n"
        f"- tokenizer: byte-level BPE, {len(tokenizer)} tokens, trained locally; Harmony special tokens\n"
        f"- seed: {seed}\n"
    )
    (tmp / "moa_tiny_model.json").write_text(
        json.dumps({"moa_tiny_random": True, "seed": seed, "parameters": params})
    )
    if output.exists():
        shutil.rmtree(output)
    tmp.rename(output)
    return output


@dataclass(frozen=True)
class Pretraining:
    steps: int = 120
    seq_len: int = 512
    batch: int = 4
    learning_rate: float = 3e-3
    seed: int = 0


def pack(tokenizer: Any, texts: Sequence[str], seq_len: int) -> Any:
    """All texts, each closed by the pad token (the document separator), cut into rows of seq_len."""
    import torch

    ids: list[int] = []
    for text in texts:
        ids += tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.pad_token_id]
    rows = len(ids) // seq_len
    if rows == 0:
        raise ValueError(f"pretraining text has {len(ids)} tokens: less than one {seq_len}-token row")
    return torch.tensor(ids[: rows * seq_len]).view(rows, seq_len)


def pretrain(
    path: Path, texts: Sequence[str], plan: Pretraining, progress: Callable[[str], None] = print
) -> dict[str, float]:
    """Train every weight of the tiny model at `path` (head included) on `texts`, in place.

    Random windows of the packed text, AdamW with a linear warmup and cosine decay; the loss is on
    every token (pad included: it separates documents). A progress line every tenth of the run.
    """
    import math
    import time

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from moa.agent import attention
    from moa.agent.policy import limit_cpu_threads

    limit_cpu_threads()
    torch.manual_seed(plan.seed)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, attn_implementation=attention.register()
    )
    rows = pack(tokenizer, texts, plan.seq_len)
    progress(
        f"pretraining the tiny model: {rows.numel():,} tokens of text in {rows.shape[0]} rows, "
        f"{plan.steps} steps of {plan.batch}x{plan.seq_len} tokens"
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.learning_rate, weight_decay=0.0)
    warmup = max(1, plan.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / plan.steps))),
    )
    generator = torch.Generator().manual_seed(plan.seed)
    model.train()
    started, losses = time.monotonic(), []
    every = max(1, plan.steps // 10)
    for step in range(1, plan.steps + 1):
        batch = rows[torch.randint(0, rows.shape[0], (plan.batch,), generator=generator)]
        loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % every == 0 or step == plan.steps:
            elapsed = time.monotonic() - started
            recent = losses[-every:]
            progress(
                f"pretrain step {step}/{plan.steps} loss {sum(recent) / len(recent):.3f} "
                f"({step * plan.batch * plan.seq_len / elapsed:,.0f} tokens/s, {elapsed:.0f}s)"
            )
    model.eval()
    record = {
        "steps": float(plan.steps),
        "tokens_seen": float(plan.steps * plan.batch * plan.seq_len),
        "corpus_tokens": float(rows.numel()),
        "first_loss": losses[0],
        "final_loss": sum(losses[-every:]) / len(losses[-every:]),
        "seconds": time.monotonic() - started,
    }
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(path, tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    meta = json.loads((tmp / "moa_tiny_model.json").read_text())
    (tmp / "moa_tiny_model.json").write_text(json.dumps(meta | {"pretraining": record}))
    with (tmp / "README.md").open("a") as fh:
        fh.write(
            f"\nThen PRETRAINED briefly (`--pretrain`): every weight, {plan.steps} steps on "
            f"{record['corpus_tokens']:,.0f} tokens of code and Harmony agent episodes, loss "
            f"{record['first_loss']:.2f} -> {record['final_loss']:.2f}. It knows the format, not the craft.\n"
        )
    shutil.rmtree(path)
    tmp.rename(path)
    return record
