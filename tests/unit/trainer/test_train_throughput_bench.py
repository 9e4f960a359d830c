"""bench/train_throughput.py checks its arguments and, without CUDA, refuses instead of guessing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[3] / "bench" / "train_throughput.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_refuses_without_cuda_and_says_what_it_would_run() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the benchmark would run")
    proc = run("--seq-len", "4096", "--steps", "3")
    assert proc.returncode == 2, proc.stderr
    assert "would run: unsloth+hf: GPT-OSS-20B shape (24 layers)" in proc.stderr
    assert "refused: no CUDA device" in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--backends", "unsloth,vllm"), "--backends: unknown ['vllm']"),
        (("--seq-len", "0"), "--seq-len must be >= 1"),
        (("--warmup", "-1"), "--warmup must be >= 0"),
    ],
)
def test_bad_arguments_are_named(args: tuple[str, ...], message: str) -> None:
    proc = run(*args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
