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
from pathlib import Path

import click

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

SNIPPETS = {
    "python": [
        "def add(a, b):\n    return a + b\n",
        "import os\n\nfor name in sorted(os.listdir('.')):\n    print(name)\n",
        "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n        self.items.append(x)\n",
        "def test_add():\n    assert add(2, 3) == 5\n",
    ],
    "rust": [
        "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n",
        "#[test]\nfn it_adds() {\n    assert_eq!(add(2, 3), 5);\n}\n",
        "pub struct Stack<T> {\n    items: Vec<T>,\n}\n\nimpl<T> Stack<T> {\n    pub fn push(&mut self, x: T) {\n        self.items.push(x);\n    }\n}\n",
    ],
    "typescript": [
        "export function add(a: number, b: number): number {\n  return a + b;\n}\n",
        "import { add } from './add';\n\ntest('adds', () => {\n  expect(add(2, 3)).toBe(5);\n});\n",
        "interface Item {\n  id: string;\n  count?: number;\n}\n",
    ],
    "go": [
        "package add\n\nfunc Add(a, b int) int {\n\treturn a + b\n}\n",
        'func TestAdd(t *testing.T) {\n\tif Add(2, 3) != 5 {\n\t\tt.Fatal("want 5")\n\t}\n}\n',
        "type Stack struct {\n\titems []int\n}\n",
    ],
}

EXTENSIONS = {"python": "py", "rust": "rs", "typescript": "ts", "go": "go"}


def corpus(seed: int = 0, conversations: int = 60) -> list[str]:
    """Training text for the tokenizer: code in the four languages and Harmony agent texts."""
    rng = random.Random(seed)
    texts = [s for snippets in SNIPPETS.values() for s in snippets]
    system = h.system_message()
    developer = h.developer_message("Fix the failing test.", h.AGENT_TOOLS)
    for i in range(conversations):
        lang = rng.choice(sorted(SNIPPETS))
        code = rng.choice(SNIPPETS[lang])
        path = f"src/mod_{i % 7}.{EXTENSIONS[lang]}"
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


def build_tokenizer(vocab_size: int = 2048, seed: int = 0):  # -> PreTrainedTokenizerFast
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
    tok.train_from_iterator(corpus(seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=T.RETURN,
        pad_token=PAD,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (PAD, T.RETURN)],
        model_max_length=4096,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build(output: Path, seed: int = 0, layers: int = 2, hidden: int = 64, experts: int = 4) -> Path:
    """Write the tiny checkpoint and tokenizer to `output` (replacing it atomically)."""
    import torch
    from transformers import GenerationConfig, GptOssConfig, GptOssForCausalLM

    torch.manual_seed(seed)
    tokenizer = build_tokenizer(seed=seed)
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
    with torch.no_grad():
        # The default init (std 0.02) leaves a 64-wide frozen head unable to produce anything but
        # near-uniform next-token distributions, so no LoRA could learn on it; std 0.5 gives the
        # head the logit range a trained model has.
        model.lm_head.weight.normal_(0.0, LM_HEAD_STD)
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


@click.command("tiny-model")
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True, help="Folder to write.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--layers", type=int, default=2, show_default=True)
@click.option("--hidden", type=int, default=64, show_default=True)
@click.option("--experts", type=int, default=4, show_default=True)
def tiny_model_cmd(output: Path, seed: int, layers: int, hidden: int, experts: int) -> None:
    """Write a tiny RANDOM GPT-OSS-architecture checkpoint + tokenizer (for tests and demos)."""
    path = build(output, seed=seed, layers=layers, hidden=hidden, experts=experts)
    click.echo(f"wrote tiny random GPT-OSS model (not a trained model) to {path}")
