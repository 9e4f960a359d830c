"""`moa registry compare`: the four-language table over the registry's adapters, with the
roadmap's flags (> 15 % below the best test pass rate; tool-call accuracy < 95 %).

The adapters' eval metrics here are recorded values written into the registry as `moa run`
writes them (`adapter_for`), not measured by this test: the table's logic is what is tested.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from moa.api.training import AdapterTraining
from moa.cli import cli
from moa.pipeline.registry import LocalRegistry, adapter_for

RECORDED = {
    "go": {"test_pass_rate": 0.70, "tool_call_accuracy": 0.99, "compile_pass_rate": 0.9},
    "python": {"test_pass_rate": 0.66, "tool_call_accuracy": 0.97, "compile_pass_rate": 0.95},
    "rust": {"test_pass_rate": 0.62, "tool_call_accuracy": 0.96},  # 11 % below the best: fine
    "typescript": {"test_pass_rate": 0.50, "tool_call_accuracy": 0.90},  # the outlier
}


def registry_with_four(root: Path) -> LocalRegistry:
    registry = LocalRegistry(root)
    for language, metrics in RECORDED.items():
        training = AdapterTraining.model_validate(
            {"metadata": {"name": language}, "spec": {"language": language}}
        )
        registry.save(adapter_for(training, metrics, [], None))
    # an older python adapter in production wins over the newer trained one
    old = AdapterTraining.model_validate({"metadata": {"name": "python-old"}, "spec": {"language": "python"}})
    adapter = adapter_for(old, {"test_pass_rate": 0.68, "tool_call_accuracy": 0.98}, [], None)
    assert adapter.status is not None
    adapter.status.stage = "production"
    registry.save(adapter)
    return registry


def test_compare_flags_the_outlier_and_exits_3(tmp_path: Path) -> None:
    registry_with_four(tmp_path)
    out = tmp_path / "compare.md"
    result = CliRunner().invoke(
        cli, ["registry", "compare", "--workdir", str(tmp_path), "--output", str(out)]
    )
    assert result.exit_code == 3, result.output
    rows = {line.split(" | ")[0].strip("| "): line for line in out.read_text().splitlines()[2:]}
    assert sorted(rows) == ["go", "python", "rust", "typescript"]
    assert "python-old-coding | production | 0.68" in rows["python"]
    assert (
        rows["go"].endswith("| - |") and rows["rust"].endswith("| - |") and rows["python"].endswith("| - |")
    )
    assert "test_pass_rate 0.5 is 29% below the best (0.7)" in rows["typescript"]
    assert "tool_call_accuracy 0.9 < 0.95" in rows["typescript"]
    assert "| absent |" in rows["rust"]  # not measured is shown as such


def test_compare_passes_when_no_language_is_flagged(tmp_path: Path) -> None:
    registry = registry_with_four(tmp_path)
    registry.dir.joinpath("typescript-coding.yaml").unlink()
    result = CliRunner().invoke(cli, ["registry", "compare", "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
