"""An adapter is served only after its checks: digest, tensors, rank, a forward pass that differs."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from moa.serving.engine import AdapterCheckError, check_artifact
from tests.unit.serving.conftest import Workdir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_file_checks(served_workdir: Workdir, tmp_path: Path) -> None:
    good = served_workdir.artifact("rust")
    info = check_artifact(good, None)
    assert info.checks == ["tensors", "rank"] and info.rank == 8
    assert "mlp.experts.gate_up_proj" in info.targets  # expert-tensor LoRA is checked too
    with pytest.raises(AdapterCheckError, match="digest"):
        check_artifact(good, "sha256:" + "0" * 64)
    for change, match in (
        (lambda c: c.update(r=16), "rank"),
        (lambda c: c["target_modules"].append("gate_proj"), "gate_proj"),
    ):
        bad = copy(good, tmp_path / match)
        config = json.loads((bad / "adapter_config.json").read_text())
        change(config)
        (bad / "adapter_config.json").write_text(json.dumps(config))
        with pytest.raises(AdapterCheckError, match=match):
            check_artifact(bad, None)


def test_an_adapter_that_changes_nothing_is_refused(served_workdir: Workdir, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from moa.api.training import LoraSpec
    from moa.serving.inprocess import InProcessEngine
    from moa.trainer.loading import add_lora

    untrained = tmp_path / "untrained"  # a fresh LoRA: lora_B is zero, so the logits equal the base's
    add_lora(
        AutoModelForCausalLM.from_pretrained(served_workdir.base), LoraSpec(r=8, alpha=16)
    ).save_pretrained(untrained)
    engine = InProcessEngine(served_workdir.base)

    async def go() -> None:
        with pytest.raises(AdapterCheckError, match="does not change"):
            await engine.load("untrained", untrained, None)
        info = await engine.load("rust", served_workdir.artifact("rust"), None)
        assert info.checks[-1].startswith("forward") and engine.loaded() == ["rust"]
        await engine.unload("rust")
        assert engine.loaded() == []
        await engine.close()

    asyncio.run(go())
