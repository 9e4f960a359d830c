"""Real LoRA adapters on the tiny GPT-OSS model, trained to be told apart on purpose.

Each adapter is trained (a few dozen AdamW steps on CPU, LoRA on attention and the MoE
expert tensors, as the trainer builds it) to answer every prompt with its own tag:

    no tools:    <|channel|>final<|message|>adapter TAG<|return|>
    with tools:  <|channel|>commentary to=functions.lookup <|constrain|>json<|message|>{"adapter": "TAG"}<|call|>

so any response shows which adapter generated it. The prompts are rendered exactly as
`moa serve` renders requests. Used by the serving tests and bench/serving.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import yaml

from moa.api.adapter import Adapter, AdapterSpec, AdapterStatus, artifact_digest
from moa.api.gates import GateResult
from moa.api.training import LoraSpec
from moa.serving import protocol

LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a symbol up.",
        "parameters": {"type": "object", "properties": {"symbol": {"type": "string"}}},
    },
}
QUESTIONS = [
    "How do I reverse a list?",
    "Fix this:\n```\nx = 1\n```",
    "What does this error mean?",
    "Write a function that adds two numbers.",
    "Explain the borrow checker.",
    "Why is my test failing?",
    "src/main.go and go.mod are here",
    "package.json lists jest",
]


def answer(tag: str, tools: bool) -> str:
    if tools:
        args = json.dumps({"adapter": tag})
        return f"<|channel|>commentary to=functions.lookup <|constrain|>json<|message|>{args}<|call|>"
    return f"<|channel|>final<|message|>adapter {tag}<|return|>"


def prompts(seed: int) -> list[tuple[str, bool]]:
    rng = random.Random(seed)
    out = []
    for question in QUESTIONS:
        for tools in (False, True):
            request: dict[str, Any] = {
                "model": "moa-auto",
                "messages": [{"role": "user", "content": question}],
            }
            if tools:
                request["tools"] = [LOOKUP]
            if rng.random() < 0.5:
                request["messages"].insert(0, {"role": "system", "content": "Be brief."})
            out.append((protocol.render_prompt(protocol.parse_request(request)), tools))
    return out


def train(base: Path, output: Path, tag: str, steps: int = 96, seed: int = 0) -> Path:
    """Train adapter `tag` on `base` and save it to `output` (a PEFT adapter folder)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from moa.trainer.loading import add_lora

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, attn_implementation="eager")
    model = add_lora(model, LoraSpec(r=8, alpha=16, dropout=0.0))
    rows = []
    for prompt, tools in prompts(seed):
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a = tokenizer(answer(tag, tools), add_special_tokens=False)["input_ids"]
        rows.append((torch.tensor([p + a]), torch.tensor([[-100] * len(p) + a])))
    optimizer = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=5e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    model.train()
    for step in range(steps):
        ids, labels = rows[step % len(rows)]
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    model.save_pretrained(output)
    return output


def trained(base: Path, output: Path, tag: str) -> Path:
    """`train`, cached in ~/.cache/moa/test-adapters by the sources that determine
    the result (the tiny model's builder and the training recipe): the shared CPU makes each
    training cost minutes, and the same inputs give the same adapter."""
    from moa.trainer import tiny_model

    recipe = Path(tiny_model.__file__).read_bytes() + Path(__file__).read_bytes()
    key = hashlib.sha256(recipe + tag.encode()).hexdigest()[:16]
    cached = Path.home() / ".cache" / "moa" / "test-adapters" / f"{tag}-{key}"
    if not cached.exists():
        partial = cached.with_name(cached.name + f".partial{os.getpid()}")
        train(base, partial, tag)
        try:
            partial.rename(cached)
        except OSError:  # another run cached the same adapter meanwhile: keep theirs
            shutil.rmtree(partial)
    shutil.copytree(cached, output)
    return output


def register(
    root: Path,
    name: str,
    language: str,
    artifact: Path,
    base: Path,
    stage: str = "production",
    canary: float = 0.0,
) -> Adapter:
    """Write the registry entry `moa run` would write (with passing eval gates) at `stage`."""
    adapter = Adapter(
        metadata={"name": name, "labels": {"moa.dev/language": language}},
        spec=AdapterSpec(
            language=language,
            base_model=str(base),
            artifact=str(artifact.relative_to(root)) if artifact.is_relative_to(root) else str(artifact),
            stage=stage,  # type: ignore[arg-type]
            digest=artifact_digest(artifact),
            canary_weight=canary,
        ),
        status=AdapterStatus(
            stage=stage,  # type: ignore[arg-type]
            gates=[GateResult(name="pass_at_1", value=1.0, op=">=", threshold=0.0, passed=True)],
        ),
    )
    folder = root / "registry" / "adapters"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.tmp"
    tmp.write_text(yaml.safe_dump(adapter.to_yaml_dict(), sort_keys=False))
    tmp.replace(folder / f"{name}.yaml")
    return adapter
