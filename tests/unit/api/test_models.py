"""The models: roadmap defaults, StageConfig, gates, layout, summaries."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from moa.api import AdapterTraining, Layout, StageConfig, StageSummary, check, load_training
from moa.api.common import Condition, set_condition
from moa.api.records import SourceRef
from moa.api.stages import STAGE_NAMES, STAGES, stage
from moa.api.training import AdapterTrainingSpec

SAMPLES = Path(__file__).resolve().parents[3] / "manifests" / "samples"


def minimal() -> AdapterTraining:
    return AdapterTraining.model_validate({"metadata": {"name": "rust"}, "spec": {"language": "rust"}})


def test_roadmap_defaults_apply_to_a_minimal_spec() -> None:
    spec = minimal().spec
    assert (spec.lora.r, spec.lora.alpha, spec.lora.load_in_4bit, spec.lora.max_seq_length) == (
        128,
        256,
        True,
        32768,
    )
    assert spec.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert spec.lora.target_parameters  # MoE expert projections
    sft = spec.stages.core_agent
    assert (sft.epochs, sft.learning_rate, sft.batch_size, sft.gradient_accumulation) == (2, 3e-5, 1, 4)
    assert (sft.packing, sft.optimizer) == (True, "adamw_8bit")
    assert (sft.gates.max_loss, sft.gates.min_tool_call_accuracy, sft.gates.eval_loss_window) == (
        0.5,
        0.95,
        0.2,
    )
    ipo = spec.stages.ipo
    assert (ipo.epochs, ipo.learning_rate, ipo.beta, ipo.gradient_accumulation) == (1, 5e-7, 0.1, 16)
    assert (ipo.gates.kl_warn, ipo.gates.kl_abort, ipo.gates.min_chosen_over_rejected) == (0.3, 0.5, 0.8)
    grpo = spec.stages.grpo
    assert (grpo.max_steps, grpo.learning_rate, grpo.num_generations, grpo.temperature) == (
        5000,
        1e-6,
        4,
        0.7,
    )
    assert grpo.gradient_accumulation == 8
    assert [(c.step, c.max_length) for c in grpo.curriculum] == [
        (0, 4096),
        (1000, 8192),
        (2000, 16384),
        (3500, 32768),
    ]
    assert (
        grpo.gates.min_mean_reward,
        grpo.gates.window,
        grpo.gates.min_reward_std,
        grpo.gates.min_max_reward,
    ) == (
        0.3,
        500,
        0.01,
        0.7,
    )
    r = grpo.rewards
    assert (r.clean, r.lint_warnings, r.tests_failed, r.compile_error, r.invalid_tool_call) == (
        1.0,
        0.7,
        0.1,
        -0.3,
        -1.0,
    )
    d = spec.data.gates
    assert (d.min_caught_mutations, d.min_multi_tool_fraction, d.max_duplicate_pairs) == (3000, 0.8, 0)
    assert (d.min_average_turns, d.min_valid_harmony_fraction) == (3, 1.0)
    assert spec.stages.preferences.samples == 4
    assert spec.resources.backend == "job" and spec.after == [] and spec.suspend is False


def test_yaml_is_camel_case_and_python_snake_case() -> None:
    t = AdapterTraining.model_validate(
        {
            "metadata": {"name": "x"},
            "spec": {"language": "go", "lora": {"maxSeqLength": 8192, "loadIn4bit": False}},
        }
    )
    assert (t.spec.lora.max_seq_length, t.spec.lora.load_in_4bit) == (8192, False)
    dumped = t.to_yaml_dict()["spec"]
    assert dumped["lora"]["maxSeqLength"] == 8192 and dumped["stages"]["coreAgent"]["learningRate"] == 3e-5


def test_unknown_fields_are_refused_by_the_model() -> None:
    with pytest.raises(ValidationError, match="lorra"):
        AdapterTraining.model_validate({"metadata": {"name": "x"}, "spec": {"language": "go", "lorra": {}}})


def test_stage_config_round_trip(tmp_path: Path) -> None:
    training = load_training(SAMPLES / "rust.yaml")
    config = StageConfig.for_training(training, "mutate", root=str(tmp_path), shard="crates:bstr@1.14.0")
    path = config.write(tmp_path / "mutate.yaml")
    raw = yaml.safe_load(path.read_text())
    assert (raw["apiVersion"], raw["kind"], raw["stage"], raw["name"]) == (
        "moa.dev/v1alpha1",
        "StageConfig",
        "mutate",
        "rust",
    )
    assert raw["spec"]["stages"]["grpo"]["numGenerations"] == 4  # defaults written out in full
    loaded = StageConfig.load(path)
    assert loaded == config
    assert loaded.output_dir == tmp_path / "data/rust/mutations/bstr-1.14.0"


def test_stage_config_refuses_other_files(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump({"kind": "AdapterTraining"}))
    with pytest.raises(ValueError, match="not a StageConfig"):
        StageConfig.load(path)


def test_stages_in_order_with_their_commands() -> None:
    assert STAGE_NAMES == (
        "fetch",
        "mutate",
        "trajectories",
        "datagate",
        "sft",
        "preferences",
        "ipo",
        "grpo",
        "merge",
        "eval",
    )
    assert {s.name: " ".join(("moa", *s.command)) for s in STAGES} == {
        "fetch": "moa datagen fetch",
        "mutate": "moa datagen mutate",
        "trajectories": "moa datagen trajectories",
        "datagate": "moa datagen gate",
        "sft": "moa train sft",
        "preferences": "moa datagen preferences",
        "ipo": "moa train ipo",
        "grpo": "moa train grpo",
        "merge": "moa merge",
        "eval": "moa eval",
    }
    assert stage("grpo").gpu and stage("grpo").sandboxed and stage("mutate").fan_out
    # Only fetch and an API teacher's trajectories may use the network.
    assert {s.name: s.network for s in STAGES if s.network != "none"} == {
        "fetch": "registries",
        "trajectories": "teacher",
    }
    with pytest.raises(ValueError, match="unknown stage"):
        stage("deploy")


def test_layout_follows_the_design() -> None:
    lay = Layout("/a", "rust")
    assert lay.mutations_of("crates:hex@0.4.3") == Path("/a/data/rust/mutations/hex-0.4.3")
    assert (lay.core_agent_train, lay.core_agent_eval) == (
        Path("/a/data/rust/core_agent/train"),
        Path("/a/data/rust/core_agent/eval"),
    )
    assert (lay.ipo_train, lay.grpo_tasks) == (
        Path("/a/data/rust/ipo/train"),
        Path("/a/data/rust/grpo/tasks"),
    )
    assert lay.base_checkpoint == Path("/a/checkpoints/coding_tui/final_merged")
    assert [lay.sft_adapter.name, lay.ipo_adapter.name, lay.grpo_adapter.name, lay.final_adapter.name] == [
        "rust_core_agent",
        "rust_ipo",
        "rust_grpo",
        "rust_coding",
    ]
    assert lay.reports == Path("/a/reports/rust")
    assert lay.base_model("/models/base") == Path("/models/base")
    assert lay.base_model("checkpoints/x") == Path("/a/checkpoints/x")
    assert lay.metrics("sft") == Path("/a/checkpoints/adapters/rust_core_agent/metrics.json")
    assert lay.stage_dir("fetch", "crates:hex@0.4.3") == Path("/a/cache/fetched/rust/hex-0.4.3")
    dirs = [lay.stage_dir(n, "crates:hex@0.4.3" if stage(n).fan_out else None) for n in STAGE_NAMES]
    assert len(set(dirs)) == len(dirs), "every stage owns its own folder"
    with pytest.raises(ValueError, match="per source"):
        lay.stage_dir("mutate")


@pytest.mark.parametrize(
    ("value", "op", "threshold", "passed"),
    [
        (0.4, "<", 0.5, True),
        (0.5, "<", 0.5, False),
        (0.5, "<=", 0.5, True),
        (0.96, ">", 0.95, True),
        (3000, ">=", 3000, True),
        (0, "==", 0, True),
        (None, ">", 0.3, False),
        (math.nan, "<", 1, False),
    ],
)
def test_check(value: float | None, op: str, threshold: float, passed: bool) -> None:
    result = check("g", value, op, threshold)  # type: ignore[arg-type]
    assert result.passed is passed
    assert result.threshold == threshold and result.op == op


def test_gates_from_spec_sections() -> None:
    spec = minimal().spec
    results = spec.stages.ipo.gates.evaluate({"kl": 0.4, "chosen_over_rejected": 0.85, "final_loss": 2.0})
    assert [(r.name, r.severity, r.passed) for r in results] == [
        ("ipo.kl", "warn", False),
        ("ipo.kl", "abort", True),
        ("ipo.chosen_over_rejected", "abort", True),
        ("ipo.final_loss", "abort", True),
    ]
    data = spec.data.gates.evaluate(
        {
            "caught_mutations": 2999,
            "multi_tool_fraction": 0.9,
            "duplicate_pairs": 0,
            "average_turns": 3.5,
            "valid_harmony_fraction": 1.0,
            "eval_overlap": 0,
            "named_test_fraction": 0.95,
            "stub_operator_fraction": 0.1,
            "function_scoped_fraction": 1.0,
            "timeout_pairs": 0,
        }
    )
    assert [r.name for r in data if not r.passed] == ["data.caught_mutations", "data.stub_operator_fraction"]
    no_benchmarks = spec.stages.eval.model_copy(update={"humaneval_problems": 0, "mmlu_questions": 0})
    assert "eval.humaneval_drop" not in {r.name for r in no_benchmarks.evaluate({})}
    assert spec.stages.grpo.rewards.reward("lint_warnings") == 0.7
    assert spec.stages.grpo.max_length_at(1500) == 8192


def test_source_lists_parse_with_the_shared_records() -> None:
    t = load_training(SAMPLES / "go.yaml")
    refs = t.spec.data.source_refs()
    assert refs[0] == SourceRef(registry="go", name="github.com/google/uuid", version="v1.6.0")
    assert t.spec.after == ["rust", "python"]


def test_summary_compact_fits_the_termination_log() -> None:
    gates = [check(f"g{i}", float(i), "<", 1.0) for i in range(60)]
    summary = StageSummary(
        stage="grpo",
        status="gate_failed",
        metrics={f"metric_{i}": i / 7 for i in range(300)},
        gates=gates,
        message="x" * 5000,
    )
    compact = summary.compact()
    assert len(compact.encode()) <= 4096
    data = json.loads(compact)
    assert data["status"] == "gate_failed" and data["stage"] == "grpo"
    assert data["gates"] and not data["gates"][0]["passed"], "failed gates are kept first"
    assert summary.exit_code == 3


def test_summary_write_read(tmp_path: Path) -> None:
    summary = StageSummary(
        stage="sft",
        status="succeeded",
        metrics={"train_loss": 0.3},
        gates=[check("sft.train_loss", 0.3, "<", 0.5)],
    )
    path = summary.write(tmp_path / "out" / "metrics.json")
    assert StageSummary.read(path) == summary
    assert not list(path.parent.glob("*.tmp"))


def test_set_condition_keeps_transition_time_while_status_holds() -> None:
    first = set_condition([], "Ready", "False", "Reconciling", observed_generation=1)
    assert [(c.type, c.status) for c in first] == [("Ready", "False")]
    stamp = first[0].last_transition_time
    again = set_condition([*first, Condition(type="Stalled", status="False")], "Ready", "False", "StillGoing")
    assert again[0].last_transition_time == stamp and again[0].reason == "StillGoing"
    assert [c.type for c in again] == ["Ready", "Stalled"]
    flipped = set_condition(again, "Ready", "True", "Succeeded")
    assert flipped[0].status == "True" and flipped[0].last_transition_time is not None


def test_eval_targets_over_an_empty_population_are_left_out_not_passed() -> None:
    from moa.api.training import EvalStage

    stage = EvalStage(mmlu_questions=0, humaneval_problems=0)
    base = {"compile_pass_rate": 1.0, "tool_call_accuracy": 1.0, "tool_call_accuracy_drop": 0.0}
    none_green = {g.name for g in stage.evaluate({**base, "test_pass_rate": 0.0})}
    assert "eval.median_iterations" not in none_green and "eval.lint_clean_rate" not in none_green
    assert "eval.test_pass_rate" in none_green  # which fails: the verdict stays with it
    some_green = {g.name: g.passed for g in stage.evaluate({**base, "test_pass_rate": 0.7})}
    assert some_green["eval.median_iterations"] is False  # green tasks but no median: absent fails


def test_stage_summary_goes_to_the_termination_log_only_where_one_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moa.api.gates import check
    from moa.api.stages import StageSummary

    summary = StageSummary(stage="sft", status="gate_failed", gates=[check("sft.loss", 0.9, "<", 0.5)])
    log = tmp_path / "termination-log"
    monkeypatch.setenv("MOA_TERMINATION_LOG", str(log))
    assert summary.write_termination_log() is False and not log.exists()  # not in a pod
    log.touch()  # the kubelet creates it in a pod
    assert summary.write_termination_log() is True
    assert StageSummary.model_validate_json(log.read_text()) == summary


def test_each_stage_names_its_own_headline_figures() -> None:
    from moa.api.stages import headline_metrics

    eval_metrics = {"base_humaneval_pass_at_1": 0.1, "base_tool_call_accuracy": 0.2, "compile_pass_rate": 0.5}
    eval_metrics |= {"seconds": 9.0, "test_pass_rate": 0.4, "tool_call_accuracy": 0.9}
    # not the alphabetically first four (the base model's figures), but the adapter's
    assert list(headline_metrics("eval", eval_metrics)) == [
        "test_pass_rate",
        "tool_call_accuracy",
        "base_tool_call_accuracy",
        "compile_pass_rate",
    ]
    grpo = {"reward_max": 1.0, "reward_mean_first": -1.0, "reward_mean_last": 0.2, "steps": 4.0, "tasks": 2.0}
    assert list(headline_metrics("grpo", grpo)) == [
        "reward_mean_first",
        "reward_mean_last",
        "reward_max",
        "steps",
    ]
    # a stage that measured none of its figures shows its first four
    assert list(headline_metrics("merge", {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": 5.0})) == [
        "a",
        "b",
        "c",
        "d",
    ]


def test_a_summary_from_a_newer_stage_image_is_read_without_its_unknown_fields() -> None:
    # An upgrade may roll the stage images before the operator: what the older reader does not
    # know is dropped; the stage's own outcome stands.
    newer = '{"stage":"eval","status":"succeeded","metrics":{"tasks":4.0},"attestation":{"x":1}}'
    summary = StageSummary.model_validate_json(newer)
    assert summary.status == "succeeded" and summary.metrics == {"tasks": 4.0}
    with pytest.raises(ValidationError):  # a user's spec stays strict: a typo is refused
        AdapterTrainingSpec.model_validate({"language": "python", "langauge": "python"})
