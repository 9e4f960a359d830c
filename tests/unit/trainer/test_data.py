"""Trainer data: the assistant-only loss mask from the Harmony structure, tool-call prompts and
their validity, and clear errors for bad records."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from trainer_fixtures import trajectory

from moa import harmony as h
from moa.trainer import data


def test_assistant_spans_cover_exactly_what_the_model_writes() -> None:
    conv = trajectory(0, random.Random(0))
    text = h.render(conv, "training")
    written = "".join(text[s:e] for s, e in data.assistant_spans(conv, text))
    # the first assistant message starts after the prompt's open header...
    assert written.startswith("<|channel|>analysis<|message|>Run the tests first.<|end|>")
    # ...and one right after it carries its own header (the model opens it after <|end|>)
    assert "<|end|><|start|>assistant<|channel|>commentary to=functions.run_tests" in written
    assert written.endswith("<|return|>")
    # nothing of the user, the tools or the system is trained on
    for unwritten in (
        "test_add fails in",
        "FAILED test_add",
        "return a - b\n",
        "You are ChatGPT",
        "Fix the failing",
    ):
        assert unwritten not in written
    assert written.count("<|call|>") == 4


def test_mask_selects_the_assistant_tokens(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    conv = trajectory(1, random.Random(0))
    enc = data.tokenize_with_mask(tok, conv)
    assert len(enc["input_ids"]) == len(enc["assistant_masks"])
    masked = tok.decode([i for i, m in zip(enc["input_ids"], enc["assistant_masks"], strict=True) if m])
    assert masked.startswith("<|channel|>analysis") and masked.endswith("<|return|>")
    assert "functions.apply_patch" in masked and "all tests passed" not in masked
    assert 0 < sum(enc["assistant_masks"]) < len(enc["input_ids"])


def test_tool_call_prompts_and_validity() -> None:
    conv = trajectory(2, random.Random(0))
    prompts = data.tool_call_prompts([conv])
    assert len(prompts) == 4 and all(p.endswith("<|start|>assistant") for p in prompts)
    good = '<|channel|>commentary to=functions.run_tests <|constrain|>json<|message|>{"tests": ["t"]}<|call|>'
    assert data.is_valid_tool_call(good)
    assert data.is_valid_tool_call("<|channel|>analysis<|message|>hm<|end|><|start|>assistant" + good)
    assert not data.is_valid_tool_call(good.replace("run_tests", "rm_rf"))  # unknown tool
    assert not data.is_valid_tool_call(good.replace('["t"]', '"t"'))  # schema: tests is an array
    assert not data.is_valid_tool_call(good.replace("{", "", 1))  # not JSON
    assert not data.is_valid_tool_call("<|channel|>final<|message|>done<|return|>")  # no call
    assert not data.is_valid_tool_call("<|channel|>commentary to=functions.run_tests")  # cut off


def test_bad_records_name_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    good = json.dumps({"text": h.render(trajectory(0, random.Random(0)), "training")})
    f.write_text(good + "\n\n" + json.dumps({"txt": 1}) + "\n")
    with pytest.raises(data.DataError, match=rf"{f}:3: record needs string field\(s\) text"):
        data.read_trajectories(tmp_path)
    f.write_text(good + "\n{oops\n")
    with pytest.raises(data.DataError, match=rf"{f}:2: not JSON"):
        data.read_trajectories(tmp_path)
    f.write_text(json.dumps({"text": "<|start|>user<|message|>hi"}) + "\n")
    with pytest.raises(data.DataError, match=rf"{f}:1: field text is not valid Harmony"):
        data.read_trajectories(tmp_path)
    with pytest.raises(data.DataError, match=r"no \*\.jsonl files"):
        data.read_trajectories(tmp_path / "missing")
    f.write_text(
        json.dumps({"prompt": "<|start|>user<|message|>hi<|end|>", "chosen": "x", "rejected": "y"}) + "\n"
    )
    with pytest.raises(data.DataError, match=rf"{f}:1: field prompt: must end with the open"):
        data.read_pairs(tmp_path)
