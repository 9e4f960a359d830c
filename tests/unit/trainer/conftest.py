"""Shared fixtures of the trainer tests: one tiny random GPT-OSS model per session (CPU)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The machine is shared: keep torch to two threads in-process and in every `moa` subprocess.
os.environ.setdefault("MOA_TORCH_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.set_num_threads(int(os.environ["MOA_TORCH_THREADS"]))
    from moa.trainer.tiny_model import build

    return build(tmp_path_factory.mktemp("model") / "tiny")
