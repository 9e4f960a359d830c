"""Every training stage end to end on the tiny random model, on CPU: SFT, IPO, merge.

Each stage writes its adapter, history, plots and metrics.json; its gate passes under one
spec and fails (exit 3) under another; IPO's KL abort stops a run mid-way; a killed SFT run
resumes from its checkpoint; the IPO reference log-probs are the SFT policy's; the merged
model computes what base + adapter computes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trainer_fixtures as fx
from click.testing import CliRunner

from moa.api.layout import Layout
from moa.api.stages import StageConfig, StageSummary

pytestmark = pytest.mark.slow

# Tiny model, high learning rate, constant schedule: learns the tool-call format in tens of steps.
SFT = {
    "learningRate": 1e-2,
    "lrScheduler": "constant",
    "warmupRatio": 0.0,
    "gradientAccumulation": 1,
    "saveSteps": 50,
}
SFT_STEPS = 50
IPO = {
    "learningRate": 5e-3,
    "lrScheduler": "constant",
    "warmupRatio": 0.0,
    "gradientAccumulation": 1,
    "beta": 0.1,
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fx.write_stage_data(tmp_path_factory.mktemp("artifacts"))


def config(root: Path, tiny_model: Path, stage: str, name: str, **stages: object) -> Path:
    return fx.stage_config(root, tiny_model, stage, root / f"{name}.yaml", **stages)


@pytest.fixture(scope="module")
def sft(root: Path, tiny_model: Path) -> StageSummary:
    """The SFT run later stages build on, with thresholds this short run meets."""
    from moa.trainer.sft import SftRun, run_sft

    # The eval-loss trend over the whole run: over only its last 20 % a 50-step tiny run is noise
    # around a plateau, and the slope's sign flipped with thread scheduling under load.
    gates = {"maxLoss": 4.0, "minToolCallAccuracy": 0.2, "evalLossWindow": 1.0}
    path = config(root, tiny_model, "sft", "sft", coreAgent=SFT | {"gates": gates})
    return run_sft(
        SftRun.from_config(StageConfig.load(path), max_steps=SFT_STEPS, format_prompts=8, max_new_tokens=40)
    )


def test_sft_trains_gates_and_publishes(sft: StageSummary, root: Path) -> None:
    out = Layout(root, "python").sft_adapter
    assert sft.status == "succeeded", sft.message
    assert {g.name: g.passed for g in sft.gates} == {
        "sft.train_loss": True,
        "sft.tool_call_accuracy": True,
        "sft.eval_loss_slope": True,
        "sft.malformed_records": True,
    }
    # At most the 8 asked for: prompts longer than maxSeqLength with the generation budget are left out.
    assert sft.metrics["steps"] == SFT_STEPS and 0 < sft.metrics["tool_call_prompts"] <= 8
    assert sft.metrics["train_loss"] < 4.0 and sft.metrics["tool_call_accuracy"] > 0.2
    # The same probe on the base, adapter off: the "before" of `moa run`'s closing table.
    assert 0 <= sft.metrics["base_tool_call_accuracy"] < sft.metrics["tool_call_accuracy"]
    for name in (
        "adapter_model.safetensors",
        "adapter_config.json",
        "history.json",
        "plots/loss.png",
        "report.md",
    ):
        assert (out / name).is_file(), name
    assert (out / "plots/loss.png").read_bytes()[:4] == b"\x89PNG"
    # metrics.json is the stage's own record: the same values, gates with value/threshold/op/passed
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["status"] == "succeeded"
    assert {"name", "value", "threshold", "op", "passed"} <= set(on_disk["gates"][0])
    assert not out.with_name(out.name + ".partial").exists()  # checkpoints cleaned up
    # LoRA on attention and on the expert tensors
    config = json.loads((out / "adapter_config.json").read_text())
    assert set(config["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert set(config["target_parameters"]) == {"mlp.experts.gate_up_proj", "mlp.experts.down_proj"}
    # experts get r // num_experts (r=8, 4 experts), alpha scaled with it
    assert config["rank_pattern"] == {"gate_up_proj": 2, "down_proj": 2}
    assert config["alpha_pattern"] == {"gate_up_proj": 4.0, "down_proj": 4.0}
    # ... and the weights have those ranks: PEFT gives each of the 4 experts its own rank-2 factors
    # on a fused expert tensor (lora_A is 2 * 4 rows), not the spec's r = 8 per expert (32 rows).
    from safetensors import safe_open

    with safe_open(str(out / "adapter_model.safetensors"), "pt") as weights:
        shapes = {k: tuple(weights.get_slice(k).get_shape()) for k in weights.keys() if ".layers.0." in k}  # noqa: SIM118
    prefix = "base_model.model.model.layers.0."
    assert shapes[prefix + "mlp.experts.base_layer.lora_A.weight"] == (2 * 4, 64)  # gate_up_proj
    assert shapes[prefix + "mlp.experts.base_layer.lora_B.weight"] == (2 * 64, 2 * 4)
    assert shapes[prefix + "mlp.experts.lora_A.weight"] == (2 * 4, 64)  # down_proj
    assert shapes[prefix + "mlp.experts.lora_B.weight"] == (64, 2 * 4)
    assert shapes[prefix + "self_attn.q_proj.lora_A.weight"] == (8, 64)  # attention keeps r = 8


def test_sft_gate_fails_with_exit_3_and_rerun_is_a_noop(root: Path, tiny_model: Path) -> None:
    from moa.trainer.sft import sft_cmd

    out = root / "strict_sft"
    path = config(root, tiny_model, "sft", "strict", coreAgent=SFT | {"gates": {"maxLoss": 0.001}})
    args = ["--config", str(path), "--output", str(out), "--max-steps", "2", "--format-prompts", "2"]
    args += ["--max-new-tokens", "8"]
    result = CliRunner().invoke(sft_cmd, args)
    assert result.exit_code == 3, result.output
    assert "gate failed: sft.train_loss" in result.output
    summary = StageSummary.read(out / "metrics.json")
    assert summary.status == "gate_failed"
    failed = [g for g in summary.gates if not g.passed]
    assert failed[0].name == "sft.train_loss" and failed[0].threshold == 0.001
    started = time.monotonic()
    again = CliRunner().invoke(sft_cmd, args)
    assert again.exit_code == 3 and time.monotonic() - started < 5  # completed: nothing re-trained


def test_killed_sft_run_resumes_from_its_checkpoint(
    root: Path, tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from moa.stage import StageDirs
    from moa.trainer.sft import SftRun, run_sft

    out = root / "resumed_sft"
    steps = 8
    path = config(
        root, tiny_model, "sft", "resume", coreAgent=SFT | {"saveSteps": 2, "gates": {"maxLoss": 100.0}}
    )
    cmd = [sys.executable, "-m", "moa.cli", "train", "sft", "--config", str(path), "--output", str(out)]
    cmd += ["--max-steps", str(steps), "--format-prompts", "1", "--max-new-tokens", "8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    dirs = StageDirs(out)
    try:
        deadline = time.monotonic() + 300
        while dirs.last_checkpoint() is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    checkpoint = dirs.last_checkpoint()
    assert checkpoint is not None, "the run wrote no checkpoint before it was killed"
    assert not (out / "metrics.json").exists()  # killed: nothing published
    killed_at = json.loads((checkpoint / "trainer_state.json").read_text())
    assert killed_at["global_step"] < steps

    with caplog.at_level("INFO", logger="moa.trainer"):
        summary = run_sft(
            SftRun.from_config(
                StageConfig.load(path), output=out, max_steps=steps, format_prompts=1, max_new_tokens=8
            )
        )
    assert f"resuming from {checkpoint}" in caplog.text
    assert summary.metrics["steps"] == steps
    history = json.loads((out / "history.json").read_text())
    # the killed run's logged steps are the start of the final history: training continued from them
    assert history[: len(killed_at["log_history"])] == killed_at["log_history"]
    assert max(e["step"] for e in history if "loss" in e) == steps


def test_two_runs_of_one_spec_train_the_same_adapter(root: Path, tiny_model: Path) -> None:
    """The fresh adapter's random init is drawn from the spec's seed (the Trainer seeds only once
    the adapter exists), so one spec trains one adapter on CPU, bit for bit: a killed run's re-run
    can be compared with an uninterrupted one. Another seed trains another adapter."""
    from safetensors.torch import load_file

    from moa.trainer.sft import SftRun, run_sft

    def adapter(name: str, seed: int) -> dict:
        gates = {"maxLoss": 100.0, "minToolCallAccuracy": 0.0, "evalLossWindow": 0.0}
        stage = SFT | {"seed": seed, "gates": gates}
        path = config(root, tiny_model, "sft", name, coreAgent=stage)
        run = SftRun.from_config(
            StageConfig.load(path), output=root / name, max_steps=2, format_prompts=1, max_new_tokens=8
        )
        assert run_sft(run).status == "succeeded"
        return load_file(str(root / name / "adapter_model.safetensors"))

    first, second, other = adapter("seeded_a", 7), adapter("seeded_b", 7), adapter("seeded_c", 8)
    assert first.keys() == second.keys() == other.keys()
    assert all(first[k].equal(second[k]) for k in first)
    assert not all(first[k].equal(other[k]) for k in first)


def test_a_malformed_trajectory_fails_sfts_gate_naming_the_report(tmp_path: Path, tiny_model: Path) -> None:
    """SFT trains on the good rows, and its malformed-records gate (spec.data.gates.maxMalformedRecords,
    0 by default) refuses the one bad row: exit 3, the message says where it is listed."""
    from moa.trainer.sft import sft_cmd

    root = fx.write_stage_data(tmp_path)
    layout = Layout(root, "python")
    train = next(layout.core_agent_train.glob("*.jsonl"))
    train.write_text(train.read_text() + '{"text": 7}\n')
    gates = {"maxLoss": 100.0, "minToolCallAccuracy": 0.0, "evalLossWindow": 0.0}
    path = config(root, tiny_model, "sft", "malformed", coreAgent=SFT | {"gates": gates})
    args = ["--config", str(path), "--max-steps", "2", "--format-prompts", "1", "--max-new-tokens", "8"]
    result = CliRunner().invoke(sft_cmd, args)
    assert result.exit_code == 3, result.output
    summary = StageSummary.read(layout.sft_adapter / "metrics.json")
    report = layout.reports / "sft" / "bad-records.txt"
    assert [g.name for g in summary.gates if not g.passed] == ["sft.malformed_records"]
    assert f"1 malformed records left out, listed in {report}" in summary.message
    assert report.read_text().startswith(f"{train}:")


@pytest.fixture(scope="module")
def ipo(sft: StageSummary, root: Path, tiny_model: Path) -> StageSummary:
    from moa.trainer.ipo import IpoRun, run_ipo

    gates = {"klWarn": 5.0, "klAbort": 10.0, "minChosenOverRejected": 0.5, "minLoss": 0.0}
    path = config(root, tiny_model, "ipo", "ipo", ipo=IPO | {"gates": gates})
    return run_ipo(IpoRun.from_config(StageConfig.load(path), max_steps=8))


def test_ipo_trains_against_sft_and_gates(ipo: StageSummary, root: Path) -> None:
    out = Layout(root, "python").ipo_adapter
    assert ipo.status == "succeeded", ipo.message
    assert ipo.metrics["steps"] == 8 and ipo.metrics["chosen_over_rejected"] > 0.5
    # Before training the policy is the SFT reference: no pair is preferred yet, the margin is 0.
    assert ipo.metrics["chosen_over_rejected_start"] == 0.0
    assert ipo.metrics["eval_margin_start"] == pytest.approx(0.0, abs=1e-6)
    assert 0 < ipo.metrics["kl"] < 10.0
    for name in (
        "adapter_model.safetensors",
        "history.json",
        "plots/loss.png",
        "plots/kl.png",
        "metrics.json",
    ):
        assert (out / name).is_file(), name
    assert not (out / "ref").exists()  # only the trained adapter is published, not the frozen reference


def test_ipo_kl_abort_stops_the_run_mid_way(sft: StageSummary, root: Path, tiny_model: Path) -> None:
    from moa.trainer.ipo import ipo_cmd

    out = root / "aborted_ipo"
    gates = {"klWarn": 0.0005, "klAbort": 0.001}
    path = config(root, tiny_model, "ipo", "abort", ipo=IPO | {"learningRate": 2e-2, "gates": gates})
    result = CliRunner().invoke(ipo_cmd, ["--config", str(path), "--output", str(out), "--max-steps", "30"])
    assert result.exit_code == 3, result.output
    summary = StageSummary.read(out / "metrics.json")
    assert summary.status == "gate_failed" and "aborted at step" in summary.message
    assert summary.metrics["steps"] < 30  # stopped mid-run
    kl = [g for g in summary.gates if g.name == "ipo.kl" and g.severity == "abort"]
    assert kl[0].passed is False and kl[0].value >= 0.001


def sequence_logps(model, prompt_ids: list[int], completion_ids: list[int]) -> float:  # type: ignore[no-untyped-def]
    import torch

    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logps = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
    targets = ids[0, 1:]
    picked = logps.gather(-1, targets[:, None])[:, 0]
    return float(picked[len(prompt_ids) - 1 :].sum())


def test_ipo_reference_is_the_sft_policy(sft: StageSummary, root: Path, tiny_model: Path) -> None:
    """The precomputed reference log-probs equal the SFT model's own, not the raw base's."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from moa.stage import StageDirs
    from moa.trainer.ipo import IpoRun, build_trainer

    # long enough for every pair: the check compares whole sequences
    path = fx.stage_config(root, tiny_model, "ipo", root / "reference.yaml", max_seq=1024, ipo=IPO)
    run = IpoRun.from_config(StageConfig.load(path), output=root / "reference_ipo", max_steps=1)
    trainer, *_ = build_trainer(run, StageDirs(run.output))
    rows = trainer.train_dataset.select(range(3))

    base = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation="eager").eval()
    base_logps = [sequence_logps(base, r["prompt_ids"], r["chosen_ids"]) for r in rows]
    sft_model = PeftModel.from_pretrained(base, Layout(root, "python").sft_adapter).eval()
    for row, base_lp in zip(rows, base_logps, strict=True):
        for side in ("chosen", "rejected"):
            expected = sequence_logps(sft_model, row["prompt_ids"], row[f"{side}_ids"])
            assert row[f"ref_{side}_logps"] == pytest.approx(expected, abs=1e-3)
        assert abs(row["ref_chosen_logps"] - base_lp) > 0.1  # and not the base's


def test_merge_final_adapter_equals_base_plus_adapter(
    ipo: StageSummary, root: Path, tiny_model: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from moa.trainer.merge import merge_cmd

    layout = Layout(root, "python")
    path = config(root, tiny_model, "merge", "merge")
    result = CliRunner().invoke(merge_cmd, ["--config", str(path), "--full"])
    assert result.exit_code == 0, result.output
    out = layout.final_adapter
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["source_stage"] == "ipo" and [s["stage"] for s in provenance["stages"]] == [
        "sft",
        "ipo",
    ]
    assert provenance["tiny_random_base"] is True and provenance["stages"][0]["data_sha256"]
    # every file is listed with its checksum
    sums = dict(line.split("  ", 1)[::-1] for line in (out / "SHA256SUMS").read_text().splitlines())
    assert "adapter_model.safetensors" in sums and "merged/model.safetensors" in sums
    for rel, digest in sums.items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
    assert StageSummary.read(out / "metrics.json").status == "succeeded"

    ids = torch.tensor([[1, 5, 42, 17, 300, 8, 99, 3]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation="eager").eval()
    with torch.no_grad():
        base_logits = base(input_ids=ids).logits
        adapted = PeftModel.from_pretrained(base, out).eval()(input_ids=ids).logits
        merged = AutoModelForCausalLM.from_pretrained(out / "merged", attn_implementation="eager").eval()
        merged_logits = merged(input_ids=ids).logits
    assert not torch.allclose(adapted, base_logits, atol=1e-3)  # the adapter does something
    torch.testing.assert_close(merged_logits, adapted, atol=1e-4, rtol=1e-4)


def test_tiny_model_is_labelled_and_deterministic(tiny_model: Path, tmp_path: Path) -> None:
    from moa.trainer.tiny_model import build

    assert json.loads((tiny_model / "config.json").read_text())["moa_tiny_random"] is True
    assert "RANDOM" in (tiny_model / "README.md").read_text()
    again = build(tmp_path / "again")
    digest = [hashlib.sha256((p / "model.safetensors").read_bytes()).hexdigest() for p in (tiny_model, again)]
    assert digest[0] == digest[1]
