"""Eval gates that can pass: a regression benchmark's data is a spec field resolved through the
Layout; when it is not configured the check says so, and the spec chooses whether that blocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from moa.api.adapter import Adapter, AdapterStatus
from moa.api.layout import Layout
from moa.api.training import EvalStage, load_training
from moa.pipeline.promotion import decide, unmet_targets

SAMPLE = Path(__file__).parents[3] / "manifests" / "samples" / "python.yaml"


def metrics_meeting(stage: EvalStage) -> dict[str, float]:
    """Values that meet every target and regression limit of `stage` exactly."""
    t, r = stage.targets, stage.regression
    return {
        "compile_pass_rate": t.min_compile_pass_rate,
        "test_pass_rate": t.min_test_pass_rate,
        "lint_clean_rate": t.min_lint_clean_rate,
        "tool_call_accuracy": t.min_tool_call_accuracy,
        "hallucinated_api_rate": t.max_hallucinated_api_rate,
        "median_iterations": t.max_median_iterations,
        "tool_call_accuracy_drop": r.max_tool_call_accuracy_drop,
        "humaneval_drop": r.max_humaneval_drop,
        "mmlu_drop": r.max_mmlu_drop,
    }


def test_unconfigured_mmlu_is_reported_and_blocks_promotion_not_training() -> None:
    stage = EvalStage()  # the CRD defaults: mmluQuestions 1000, no mmluData
    assert stage.not_configured() == [
        "MMLU: not configured (mmluQuestions > 0 but stages.eval.mmluData is unset)"
    ]
    gates = stage.evaluate(metrics_meeting(stage))
    mmlu = [g for g in gates if g.name == "eval.mmlu_drop"]
    assert len(mmlu) == 1 and mmlu[0].value is None and not mmlu[0].passed
    assert mmlu[0].severity == "warn"  # the eval stage succeeds ...
    assert all(g.passed for g in gates if g.name != "eval.mmlu_drop")
    # ... and production promotion is refused, naming the check
    adapter = Adapter.model_validate(
        {"metadata": {"name": "python-1"}, "spec": {"language": "python", "baseModel": "b", "artifact": "a"}}
    )
    adapter.status = AdapterStatus(stage="trained", metrics={}, gates=gates)
    assert unmet_targets(adapter) == ["eval.mmlu_drop: absent <= 0.01 failed (warn)"]
    refused = decide(adapter, "production", [])
    assert (refused.stage, refused.blocked) == ("trained", "TargetsNotMet")
    assert decide(adapter, "evaluating", []).stage == "evaluating"


@pytest.mark.parametrize(("choice", "severities"), [("blockTraining", ["abort"]), ("ignore", [])])
def test_the_spec_chooses_whether_unconfigured_blocks(choice: str, severities: list[str]) -> None:
    stage = EvalStage.model_validate({"regression": {"unconfigured": choice}})
    gates = [g for g in stage.evaluate(metrics_meeting(stage)) if g.name == "eval.mmlu_drop"]
    assert [g.severity for g in gates] == severities and not any(g.passed for g in gates)


def test_configured_mmlu_resolves_through_the_layout_and_gates_the_drop(tmp_path: Path) -> None:
    stage = EvalStage.model_validate({"mmluData": "benchmarks/mmlu.jsonl"})
    assert stage.not_configured() == []
    assert Layout(tmp_path, "python").artifact(stage.mmlu_data or "") == tmp_path / "benchmarks/mmlu.jsonl"
    assert Layout(tmp_path, "python").artifact("/data/mmlu.jsonl") == Path("/data/mmlu.jsonl")
    ok = stage.evaluate(metrics_meeting(stage))
    assert all(g.passed for g in ok) and [g.severity for g in ok if g.name == "eval.mmlu_drop"] == ["abort"]
    worse = stage.evaluate(metrics_meeting(stage) | {"mmlu_drop": 0.5})
    assert [g.name for g in worse if not g.passed] == ["eval.mmlu_drop"]


def test_production_sample_gates_are_all_satisfiable_once_data_is_supplied() -> None:
    training = load_training(SAMPLE)
    stage = training.spec.stages.eval
    assert stage.not_configured() == [], "the sample names its MMLU data"
    gates = stage.evaluate(metrics_meeting(stage))
    assert gates and all(g.passed for g in gates), [g.describe() for g in gates if not g.passed]
    assert {g.name for g in gates} >= {"eval.mmlu_drop", "eval.humaneval_drop", "eval.test_pass_rate"}
