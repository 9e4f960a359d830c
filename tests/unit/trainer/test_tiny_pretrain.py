"""`moa dev tiny-model --pretrain`: the corpus is real code plus valid Harmony agent episodes over
it, and pretraining every weight of the tiny model lowers its loss on that text."""

from __future__ import annotations

import json
from pathlib import Path

from moa import harmony as h
from moa.dev.tiny_corpus import corpus

CODE = {
    "pkg/strings.py": "def shout(text):\n    return text.upper() + '!'\n\n\ndef whisper(text):\n    return text.lower()\n",
    "pkg/maths.py": "def add(a, b):\n    return a + b\n\n\ndef mean(xs):\n    return sum(xs) / len(xs)\n",
    "README.txt": "not code: left out\n",
}


def test_corpus_is_the_sources_code_and_valid_agent_episodes(tmp_path: Path) -> None:
    for rel, text in CODE.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    texts = corpus("python", [f"path:{tmp_path}"], episodes=6, seed=0)
    episodes = [t for t in texts if t.startswith("<|start|>")]
    assert len(episodes) == 6
    code = [t for t in texts if not t.startswith("<|start|>")]
    assert CODE["pkg/strings.py"] in code and CODE["pkg/maths.py"] in code
    assert not any("not code" in t for t in texts)
    for text in episodes:
        conversation = h.parse(text)  # valid Harmony, as the agent writes it
        calls = [m for m in conversation.messages if m.is_tool_call]
        assert {str(m.recipient) for m in calls} >= {
            "functions.run_tests",
            "functions.read_file",
            "functions.apply_patch",
        }
        assert all(h.parse_call(m) is not None and h.parse_call(m).ok for m in calls)  # type: ignore[union-attr]


def test_pretraining_lowers_the_loss_and_records_it(tmp_path: Path) -> None:
    from moa.trainer import tiny_model

    for rel, text in CODE.items():
        (tmp_path / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / rel).write_text(text)
    texts = corpus("python", [f"path:{tmp_path / 'src'}"], episodes=8, seed=0)
    path = tiny_model.build(tmp_path / "model", tokenizer_text=texts, head_std=None)
    lines: list[str] = []
    record = tiny_model.pretrain(
        path, texts, tiny_model.Pretraining(steps=16, seq_len=128, batch=2, learning_rate=1e-2), lines.append
    )
    assert record["final_loss"] < record["first_loss"] - 1.0, record
    assert any(line.startswith("pretrain step 16/16 loss") for line in lines)  # progress is shown
    meta = json.loads((path / "moa_tiny_model.json").read_text())
    assert meta["pretraining"]["steps"] == 16 and "PRETRAINED" in (path / "README.md").read_text()
    assert not path.with_name(path.name + ".tmp").exists()
