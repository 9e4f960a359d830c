"""The data gate and the trajectories stage on files with every kind of malformed row: the stage
exits per its contract (3 for a failed gate, 1 with a clear message for nothing to do, never a
traceback), every bad line is named `file:line: why` in bad-records.txt, the first few on
screen, the count is in metrics.json, and the input files are unchanged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from click.testing import CliRunner
from python_mutations import stage_config
from test_gate import _diff, _row

from moa.api.bad_records import REPORT, SHOWN
from moa.api.records import MutationRecord
from moa.cli import cli

GOOD_MUTATION = MutationRecord(
    language="python", source="pypi:a@1", version="1", file="x.py", operator="op", diff="d", status="caught"
).model_dump_json()
# (line text, why it is bad); None: a good line.
MUTATION_LINES: list[tuple[str, str | None]] = [
    (GOOD_MUTATION, None),
    ("{broken", "not valid JSON"),
    ("[1, 2]", "record"),
    ("42", "record"),
    ('{"language": "python"}', "source"),
    (GOOD_MUTATION[:-1] + ', "status": "maybe"}', "status"),
    (GOOD_MUTATION.replace('"pypi:a@1"', '"bogus"'), "source"),
    ("\udcff\udcfe not utf-8", "not valid JSON"),
]


def _trajectory_lines() -> list[tuple[str, str | None]]:
    good = _row(1, "pypi:a@1", "f", _diff("x = 1", "x = 2"))
    return [
        (json.dumps(good), None),
        ("{not json", "not valid JSON"),
        ("[]", "a list, not a JSON object"),
        ("null", "a NoneType, not a JSON object"),
        (json.dumps({**good, "text": 5}), "missing or not a string: text"),
        (json.dumps({k: v for k, v in good.items() if k != "diff"}), "missing or not a string: diff"),
        (json.dumps({**good, "source": "bogus"}), "source: invalid source 'bogus'"),
        (json.dumps({**good, "function": ["x"]}), "function: not a string (list)"),
        (json.dumps({**good, "function": 5}), "function: not a string (int)"),
        ('{"id": "\\ud800"', "not valid JSON"),
    ]


def _write(path: Path, lines: list[tuple[str, str | None]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("\n".join(text for text, _ in lines).encode("utf-8", "surrogateescape") + b"\n")


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "data").rglob("*"))
        if p.is_file()
    }


def _expected(path: Path, lines: list[tuple[str, str | None]]) -> list[tuple[str, str]]:
    return [(f"{path}:{n}:", why) for n, (_, why) in enumerate(lines, 1) if why is not None]


def _assert_named(report: Path, expected: list[tuple[str, str]]) -> None:
    named = report.read_text().splitlines()
    for where, why in expected:
        assert any(line.startswith(where) and why in line for line in named), (where, why, named)


def test_gate_names_every_malformed_row_and_exits_per_contract(tmp_path: Path) -> None:
    core = tmp_path / "data" / "python" / "core_agent"
    train, evals = core / "train" / "trajectories.jsonl", core / "eval" / "trajectories.jsonl"
    mutations = tmp_path / "data" / "python" / "mutations" / "a" / "mutations.jsonl"
    lines = _trajectory_lines()
    _write(train, lines)
    _write(evals, [(json.dumps(_row(2, "pypi:b@1", "g", _diff("y = 1", "y = 2"))), None)])
    _write(mutations, MUTATION_LINES)
    before = _hashes(tmp_path)
    config = stage_config(tmp_path, "datagate", gates={"minCaughtMutations": 0, "minMultiToolFraction": 0.8})
    result = CliRunner().invoke(cli, ["datagen", "gate", "--config", str(config)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    out = tmp_path / "reports" / "python" / "datagate"
    metrics = json.loads((out / "metrics.json").read_text())
    # 2 valid trajectories of 11 lines: valid_harmony_fraction fails its gate -> exit 3, not 1.
    assert result.exit_code == 3, result.output
    assert metrics["metrics"]["malformed_trajectory_rows"] == len(lines) - 1
    assert metrics["metrics"]["malformed_mutation_records"] == len(MUTATION_LINES) - 1
    expected = _expected(train, lines) + _expected(mutations, MUTATION_LINES)
    _assert_named(out / REPORT, expected)
    assert len((out / REPORT).read_text().splitlines()) == len(expected)
    assert (
        result.output.count("skipped malformed record:") == SHOWN
        and f"listed in {out / REPORT}" in result.output
    )
    assert _hashes(tmp_path) == before


def test_trajectories_stage_names_every_malformed_record(tmp_path: Path) -> None:
    mutations = tmp_path / "data" / "python" / "mutations" / "a" / "mutations.jsonl"
    only_bad = [line for line in MUTATION_LINES if line[1] is not None]
    _write(mutations, only_bad)
    before = _hashes(tmp_path)
    config = stage_config(tmp_path, "trajectories")
    result = CliRunner().invoke(cli, ["datagen", "trajectories", "--config", str(config)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code in (0, 1), result.output  # nothing usable: a clear failure or an empty run
    assert "Traceback" not in result.output
    reports = list(tmp_path.rglob(REPORT))
    assert len(reports) == 1, result.output
    _assert_named(reports[0], _expected(mutations, only_bad))
    assert _hashes(tmp_path) == {**before, **{k: v for k, v in _hashes(tmp_path).items() if k not in before}}
    assert all(_hashes(tmp_path)[k] == v for k, v in before.items())
