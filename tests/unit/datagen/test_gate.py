"""The data gate: real oracle trajectories pass it with the tiny thresholds of the test spec;
hand-made data sets break each gate (duplicates, eval contamination, broken Harmony, too few
mutations, too few tool calls) and the command exits 3 naming the gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from python_mutations import oracle_dataset, records, stage_config, write_mutations

from moa import harmony as h
from moa.api.stages import EXIT_GATE_FAILED
from moa.cli import cli
from moa.datagen.trajectories import write_jsonl


def _diff(old: str, new: str, file: str = "pkg/mod.py") -> str:
    return f"--- a/{file}\n+++ b/{file}\n@@ -1 +1 @@\n-{old}\n+{new}\n"


def _row(i: int, source: str, function: str, diff: str, calls: int = 2) -> dict[str, object]:
    msgs = [h.system_message(), h.developer_message("Fix the bug.", h.AGENT_TOOLS), h.user("tests fail")]
    for _ in range(calls):
        msgs += [h.analysis("Look."), h.tool_call("run_tests", {}), h.tool_result("run_tests", "FAILED")]
    msgs.append(h.final("Fixed."))
    text = h.render(h.Conversation(msgs), "training")
    return {
        "id": f"r{i}",
        "source": source,
        "file": "pkg/mod.py",
        "function": function,
        "diff": diff,
        "text": text,
    }


def _write(root: Path, train: list[dict[str, object]], evals: list[dict[str, object]]) -> None:
    core = root / "data" / "python" / "core_agent"
    write_jsonl(core / "train" / "trajectories.jsonl", train)
    write_jsonl(core / "eval" / "trajectories.jsonl", evals)


def _gate(root: Path, **gates: object) -> tuple[int, dict[str, dict[str, object]], str]:
    config = stage_config(
        root,
        "datagate",
        gates={"minCaughtMutations": 0, "minMultiToolFraction": 0.8, "minAverageTurns": 3, **gates},
    )
    result = CliRunner().invoke(cli, ["datagen", "gate", "--config", str(config)])
    metrics = json.loads((root / "reports" / "python" / "datagate" / "metrics.json").read_text())
    return result.exit_code, {g["name"]: g for g in metrics["gates"]}, result.output


def test_clean_synthetic_data_passes(tmp_path: Path) -> None:
    train = [_row(i, "pypi:a@1", f"f{i}", _diff(f"x = {i}", f"x = {i + 1}")) for i in range(3)]
    evals = [_row(9, "pypi:b@1", "g", _diff("y = 1", "y = 2"))]
    _write(tmp_path, train, evals)
    code, gates, output = _gate(tmp_path)
    assert code == 0, output
    assert gates["data.average_turns"]["value"] == 3 and gates["data.multi_tool_fraction"]["value"] == 1
    assert all(g["passed"] for g in gates.values()) and "| data.eval_overlap" in output
    assert (tmp_path / "reports/python/datagate/gates.md").read_text().startswith("| gate")


def test_duplicates_contamination_and_broken_harmony_fail_with_exit_3(tmp_path: Path) -> None:
    same = _diff("x = 1", "x = 2")
    train = [
        _row(1, "pypi:a@1", "f", same),
        _row(2, "pypi:a@2", "f2", _diff("x  =  1", "x = 2")),  # the same pair, another version, other spacing
        _row(
            3, "pypi:c@1", "g", _diff("z = 1", "z = 2")
        ),  # shares (package, file, function)? no: package differs
        _row(4, "pypi:b@1", "g", _diff("w = 1", "w = 2")),  # same package, file and function as eval
        _row(5, "pypi:d@1", "k", _diff("y = 1", "y = 2")),  # the same diff as eval
    ]
    evals = [_row(9, "pypi:b@1", "g", _diff("y = 1", "y = 2"))]
    broken = dict(_row(6, "pypi:e@1", "e", _diff("q = 1", "q = 2")))
    broken["text"] = str(broken["text"]).replace("<|call|>", "<|end|>", 1)
    _write(tmp_path, [*train, broken], evals)
    with (tmp_path / "data/python/core_agent/train/trajectories.jsonl").open("a") as fh:
        fh.write('{"id": "r7", "text": 1}\n{torn\n')
    code, gates, output = _gate(tmp_path)
    assert code == EXIT_GATE_FAILED
    assert gates["data.duplicate_pairs"]["value"] == 1 and not gates["data.duplicate_pairs"]["passed"]
    assert gates["data.eval_overlap"]["value"] == 2 and not gates["data.eval_overlap"]["passed"]
    assert gates["data.valid_harmony_fraction"]["value"] == pytest.approx(6 / 9)
    assert "FAIL" in output and "r4" in output and "r6" in output
    assert "trajectories.jsonl:7: missing or not a string: text, source, file, diff" in output
    # A failed gate is re-checked on the next run (after the data is fixed), not skipped.
    _write(tmp_path, [train[0], train[2]], evals)
    code, gates, _ = _gate(tmp_path)
    assert code == 0


def test_too_few_mutations_or_tool_calls_fail(tmp_path: Path) -> None:
    write_mutations(tmp_path, records()[:2])
    _write(tmp_path, [_row(1, "pypi:a@1", "f", _diff("a", "b"), calls=1)], [])
    code, gates, _ = _gate(tmp_path, minCaughtMutations=3)
    assert code == EXIT_GATE_FAILED
    assert gates["data.caught_mutations"]["value"] == 2 and not gates["data.caught_mutations"]["passed"]
    assert gates["data.multi_tool_fraction"]["value"] == 0 and gates["data.average_turns"]["value"] == 2


def test_a_malformed_record_fails_the_gate_naming_the_report(tmp_path: Path) -> None:
    """One malformed mutation record (otherwise clean data): maxMalformedRecords defaults to 0, so
    the gate refuses, and its message says where every bad record is listed; allowing one passes."""
    train = [_row(i, "pypi:a@1", f"f{i}", _diff(f"x = {i}", f"x = {i + 1}")) for i in range(3)]
    _write(tmp_path, train, [_row(9, "pypi:b@1", "g", _diff("y = 1", "y = 2"))])
    bad = tmp_path / "data" / "python" / "mutations" / "a" / "mutations.jsonl"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"language": "python", "status": "caught"}\n')
    code, gates, output = _gate(tmp_path)
    report = tmp_path / "reports" / "python" / "datagate" / "bad-records.txt"
    assert code == EXIT_GATE_FAILED, output
    assert gates["data.malformed_records"]["value"] == 1 and not gates["data.malformed_records"]["passed"]
    assert [name for name, g in gates.items() if not g["passed"]] == ["data.malformed_records"]
    summary = json.loads(report.with_name("metrics.json").read_text())["message"]
    assert f"1 malformed records left out, listed in {report}" in summary
    assert "maxMalformedRecords" in summary and f"{bad}:1:" in report.read_text()
    code, gates, output = _gate(tmp_path, maxMalformedRecords=1)
    assert code == 0 and gates["data.malformed_records"]["passed"], output


def test_no_trajectories_is_absent_not_passing(tmp_path: Path) -> None:
    code, gates, _ = _gate(tmp_path)
    assert code == EXIT_GATE_FAILED and gates["data.valid_harmony_fraction"].get("value") is None


@pytest.mark.slow
def test_real_oracle_trajectories_pass_the_data_gate(tmp_path: Path) -> None:
    root, _, resumed = oracle_dataset()
    assert resumed.exit_code == 0, resumed.output
    shutil.copytree(root / "data", tmp_path / "data")
    # The dataset holds two corrupted mutation lines on purpose (see oracle_dataset): allowed here.
    config = stage_config(tmp_path, "datagate", gates={"maxMalformedRecords": 2})
    result = CliRunner().invoke(cli, ["datagen", "gate", "--config", str(config)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "reports/python/datagate/metrics.json").read_text())
    assert metrics["status"] == "succeeded" and metrics["metrics"]["caught_mutations"] == 5
    assert {g["name"] for g in metrics["gates"]} == {
        "data.caught_mutations",
        "data.multi_tool_fraction",
        "data.duplicate_pairs",
        "data.average_turns",
        "data.valid_harmony_fraction",
        "data.eval_overlap",
        "data.named_test_fraction",
        "data.stub_operator_fraction",
        "data.function_scoped_fraction",
        "data.timeout_pairs",
        "data.malformed_records",
    }
    assert all(g["passed"] and g.get("value") is not None for g in metrics["gates"])
    assert metrics["metrics"]["function_scoped_fraction"] == 1.0
    again = CliRunner().invoke(cli, ["datagen", "gate", "--config", str(config)])
    assert again.exit_code == 0 and "already passed" in again.output
