"""The spec's hyper-parameters as transformers reads them: warmup is a share of the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from moa.agent.policy import Backend
from moa.api.training import SftStage
from moa.stage import StageDirs
from moa.trainer.arguments import trainer_kwargs


@pytest.mark.parametrize(
    ("ratio", "steps", "warmup"), [(0.03, 100, 3), (0.1, 1000, 100), (1.0, 40, 40), (0.0, 50, 0)]
)
def test_warmup_ratio_is_a_share_of_the_run(tmp_path: Path, ratio: float, steps: int, warmup: int) -> None:
    from transformers import TrainingArguments

    training = SftStage(warmup_ratio=ratio)
    kwargs = trainer_kwargs(
        training, Backend("hf", "cpu", "float32", False), StageDirs(tmp_path / "out"), steps
    )
    args = TrainingArguments(**kwargs)
    assert args.get_warmup_steps(steps) == warmup
