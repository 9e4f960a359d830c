"""Trajectories, preference pairs and repair tasks with every kind of malformed row: the readers
keep the good rows and name every bad one `file:line: why`; the stages that read them (SFT, IPO;
preferences, GRPO, eval) list them all in bad-records.txt, print the first few, and on input with nothing usable
exit 1 with a clear message pointing at that list -- never a traceback -- leaving the inputs
unchanged. No model is loaded: every stage reads its data before it loads one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from trainer_fixtures import stage_config, write_pairs

from moa.agent.tasks import Bug, grpo_task, read_good_tasks
from moa.api.bad_records import REPORT
from moa.api.layout import Layout
from moa.api.records import MutationRecord
from moa.cli import cli
from moa.trainer import data

sys.path.insert(0, str(Path(__file__).parents[1] / "datagen"))
from test_malformed_inputs import _assert_named, _expected, _hashes, _write

Lines = list[tuple[str, str | None]]  # (line text, why it is bad); None: a good line


def _pair_lines(tmp_path: Path) -> Lines:
    good = json.loads(write_pairs(tmp_path / "good", 1, seed=0).read_text())
    return [
        (json.dumps(good), None),
        ("{not json", "not JSON"),
        ("[1, 2]", "a list, not a JSON object"),
        (json.dumps({k: v for k, v in good.items() if k != "chosen"}), "string field(s) chosen"),
        (json.dumps({**good, "rejected": 7}), "string field(s) rejected"),
        (json.dumps({**good, "prompt": "<|start|>user<|message|>hi"}), "field prompt"),
        (json.dumps({**good, "prompt": good["prompt"].removesuffix("<|start|>assistant")}), "must end with"),
        (json.dumps({**good, "chosen": "<|channel|>final<|message|>cut off"}), "field chosen"),
        ("\udcff\udcfe not utf-8", "not UTF-8"),
    ]


def _task_lines() -> Lines:
    record = MutationRecord(
        language="python",
        source="pypi:a@1",
        version="1",
        file="a.py",
        operator="op",
        diff="d",
        status="caught",
    )
    good = grpo_task(Bug("0000000af", record), file_chars=100, curriculum=(4096,))
    return [
        (json.dumps(good), None),
        ("{not json", "not JSON"),
        ("null", "a NoneType, not a JSON object"),
        (json.dumps({k: v for k, v in good.items() if k != "diff"}), "string field(s) diff"),
        (json.dumps({**good, "id": 3}), "string field(s) id"),
        (json.dumps({**good, "prompt": None}), "a task needs a string field prompt"),
        (json.dumps({**good, "prompt": "<|start|>user<|message|>hi"}), "not valid Harmony"),
        (json.dumps({**good, "source": "bogus"}), "source: invalid source 'bogus'"),
        (json.dumps({**good, "context_tokens": "many"}), "context_tokens: not a finite number ('many')"),
        (json.dumps({**good, "context_tokens": float("nan")}), "context_tokens: not a finite number (nan)"),
        (json.dumps({**good, "file": ["a.py"]}), "file: not a string (list)"),
        ("\udcff not utf-8", "not UTF-8"),
    ]


BAD_TRAJECTORIES: Lines = [
    ("{not json", "not JSON"),
    ("[]", "a list, not a JSON object"),
    (json.dumps({"txt": "x"}), "string field(s) text"),
    (json.dumps({"text": 5}), "string field(s) text"),
    (json.dumps({"text": "<|start|>user<|message|>hi"}), "not valid Harmony"),
    ("\udcff not utf-8", "not UTF-8"),
]


def _bad_only(lines: Lines) -> Lines:
    return [line for line in lines if line[1] is not None]


def test_pair_reader_keeps_good_pairs_and_names_every_bad_line(tmp_path: Path) -> None:
    lines = _pair_lines(tmp_path)
    path = tmp_path / "pairs" / "pairs.jsonl"
    _write(path, lines)
    (path.parent / "empty.jsonl").write_text("")  # an empty file holds no record: no error either
    skipped: list[str] = []
    pairs = data.read_pairs(path.parent, skipped)
    assert len(pairs) == 1 and pairs[0].prompt == json.loads(lines[0][0])["prompt"]
    assert len(skipped) == len(lines) - 1
    for (where, why), line in zip(_expected(path, lines), skipped, strict=True):
        assert line.startswith(where) and why in line, (where, why, line)
    with pytest.raises(data.DataError, match=rf"{path}:2: not JSON"):  # without `skipped`: stops
        data.read_pairs(path)


def test_task_reader_keeps_good_tasks_and_reports_every_bad_line(tmp_path: Path) -> None:
    lines = _task_lines()
    path = tmp_path / "tasks" / "tasks.jsonl"
    _write(path, lines)
    shown: list[str] = []
    tasks, skipped = read_good_tasks(path, "python", None, tmp_path / "report", shown.append)
    assert [t.id for t in tasks] == ["0000000af"] and len(skipped) == len(lines) - 1
    _assert_named(tmp_path / "report" / REPORT, _expected(path, lines))
    assert len(shown) == 6 and shown[-1].endswith(
        f"all {len(skipped)} are listed in {tmp_path / 'report' / REPORT}"
    )


def _run(args: list[str]) -> str:
    result = CliRunner().invoke(cli, args)
    # exit 1 with a message: a ClickException is a SystemExit, an unexpected crash is not.
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return result.output


def test_ipo_on_only_malformed_pairs_fails_clearly(tmp_path: Path) -> None:
    layout = Layout(tmp_path, "python")
    lines = _bad_only(_pair_lines(tmp_path / "scratch"))
    path = layout.ipo_train / "pairs.jsonl"
    _write(path, lines)
    (layout.ipo_train / "empty.jsonl").write_text("")
    before = _hashes(tmp_path)
    config = stage_config(tmp_path, tmp_path / "no-model", "ipo", tmp_path / "ipo.yaml")
    output = _run(["train", "ipo", "--config", str(config)])
    report = layout.reports / "ipo" / REPORT
    assert f"{len(lines)} malformed records left out, listed in {report}" in output
    assert output.count("skipped malformed record:") == 5
    _assert_named(report, _expected(path, lines))
    assert _hashes(tmp_path) == before


def test_sft_on_only_malformed_trajectories_fails_clearly(tmp_path: Path) -> None:
    layout = Layout(tmp_path, "python")
    train, held_out = layout.core_agent_train / "t.jsonl", layout.core_agent_eval / "t.jsonl"
    _write(train, BAD_TRAJECTORIES)
    _write(held_out, BAD_TRAJECTORIES[:2])
    before = _hashes(tmp_path)
    config = stage_config(tmp_path, tmp_path / "no-model", "sft", tmp_path / "sft.yaml")
    output = _run(["train", "sft", "--config", str(config)])
    report = layout.reports / "sft" / REPORT
    assert (
        f"no train trajectories in {layout.core_agent_train} (8 malformed records left out, listed in {report})"
        in output
    )
    _assert_named(report, _expected(train, BAD_TRAJECTORIES) + _expected(held_out, BAD_TRAJECTORIES[:2]))
    assert _hashes(tmp_path) == before


@pytest.mark.parametrize(
    ("group", "stage", "flag", "reports"),
    [
        ("datagen", "preferences", "--tasks", "reports/python/preferences"),
        ("train", "grpo", "--data", "reports/python/grpo"),
        # eval's report folder is its output: the list waits in the unpublished result.
        ("eval", None, "--data", "reports/python/eval.partial/result"),
    ],
)
def test_task_stages_on_only_malformed_rows_fail_clearly(
    tmp_path: Path, group: str, stage: str | None, flag: str, reports: str
) -> None:
    lines = _bad_only(_task_lines())
    path = tmp_path / "data" / "python" / "tasks" / "tasks.jsonl"
    _write(path, lines)
    before = _hashes(tmp_path)
    config = stage_config(tmp_path, tmp_path / "no-model", stage or group, tmp_path / "stage.yaml")
    output = _run([group, *([stage] if stage else []), "--config", str(config), flag, str(path.parent)])
    report = tmp_path / reports / REPORT
    assert f"listed in {report}" in output and output.count("skipped malformed record:") == 5
    _assert_named(report, _expected(path, lines))
    assert _hashes(tmp_path) == before
