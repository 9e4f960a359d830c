"""`moa manifests validate`: the CRD schema and its CEL rules, evaluated offline."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from moa.api.cli import manifests
from moa.api.validate import validate_object

SAMPLES = Path(__file__).resolve().parents[3] / "manifests" / "samples"


def training(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "moa.dev/v1alpha1",
        "kind": "AdapterTraining",
        "metadata": {"name": "rust"},
        "spec": {"language": "rust", **spec},
    }


def with_field(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of `doc` with the field at `dotted` (e.g. spec.lora.r) set to `value`."""
    doc = copy.deepcopy(doc)
    node = doc
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return doc


def refuse(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(manifests, ["validate", str(path)])
    assert result.exit_code == 1, result.output
    return result.output


BASE = training()
CURRICULUM = [{"step": 0, "maxLength": 4096}, {"step": 1000, "maxLength": 8192}]

# (id, document, field path the message must name, words the message must contain)
INVALID = [
    ("language-not-dns-label", with_field(BASE, "spec.language", "Rust!"), "spec.language", "does not match"),
    ("language-missing", {**BASE, "spec": {}}, "spec.language", "required"),
    ("unknown-field", with_field(BASE, "spec.bogus", 1), "spec.bogus", "unknown field"),
    ("lora-rank-zero", with_field(BASE, "spec.lora.r", 0), "spec.lora.r", ">= 1"),
    (
        "lora-alpha-not-positive",
        with_field(BASE, "spec.lora.alpha", 0),
        "spec.lora.alpha",
        "alpha must be > 0",
    ),
    (
        "kl-warn-not-below-abort",
        with_field(BASE, "spec.stages.ipo.gates", {"klWarn": 0.6, "klAbort": 0.5}),
        "spec.stages.ipo.gates.klWarn",
        "klWarn must be below klAbort",
    ),
    (
        "temperature-zero",
        with_field(BASE, "spec.stages.grpo.temperature", 0),
        "spec.stages.grpo.temperature",
        "(0, 2]",
    ),
    (
        "temperature-above-two",
        with_field(BASE, "spec.stages.grpo.temperature", 2.5),
        "spec.stages.grpo.temperature",
        "(0, 2]",
    ),
    (
        "one-generation",
        with_field(BASE, "spec.stages.grpo.numGenerations", 1),
        "spec.stages.grpo.numGenerations",
        ">= 2",
    ),
    (
        "curriculum-not-from-zero",
        with_field(BASE, "spec.stages.grpo.curriculum", [{"step": 10, "maxLength": 4096}]),
        "spec.stages.grpo.curriculum",
        "start at step 0",
    ),
    (
        "curriculum-not-increasing",
        with_field(BASE, "spec.stages.grpo.curriculum", [*CURRICULUM, {"step": 1000, "maxLength": 16384}]),
        "spec.stages.grpo.curriculum",
        "strictly increasing",
    ),
    (
        "curriculum-longer-than-max-seq",
        with_field(
            with_field(BASE, "spec.stages.grpo.curriculum", CURRICULUM), "spec.lora.maxSeqLength", 4096
        ),
        "spec.stages.grpo.curriculum",
        "must not exceed lora.maxSeqLength",
    ),
    (
        "curriculum-too-long",
        with_field(BASE, "spec.stages.grpo.curriculum", [{"step": i, "maxLength": 4096} for i in range(9)]),
        "spec.stages.grpo.curriculum",
        "more than 8 items",
    ),
    (
        "pytorchjob-without-gpus",
        with_field(BASE, "spec.resources", {"backend": "pytorchjob", "gpus": 0}),
        "spec.resources.gpus",
        "need gpus > 0",
    ),
    (
        "unknown-backend",
        with_field(BASE, "spec.resources.backend", "slurm"),
        "spec.resources.backend",
        "one of job",
    ),
    (
        "source-without-version",
        with_field(BASE, "spec.data.sources", ["pypi:attrs"]),
        "spec.data.sources[0]",
        "does not match",
    ),
    (
        "api-teacher-without-model",
        with_field(BASE, "spec.data.teacher", {"kind": "openai", "endpoint": "http://127.0.0.1:8000"}),
        "spec.data.teacher.model",
        "model is required",
    ),
    (
        "after-self",
        with_field(BASE, "spec.after", ["python", "rust"]),
        "spec.after",
        "cannot wait for itself",
    ),
    (
        "negative-learning-rate",
        with_field(BASE, "spec.stages.coreAgent.learningRate", -1e-5),
        "spec.stages.coreAgent.learningRate",
        "> 0",
    ),
    (
        "accuracy-above-one",
        with_field(BASE, "spec.stages.coreAgent.gates.minToolCallAccuracy", 1.5),
        "spec.stages.coreAgent.gates.minToolCallAccuracy",
        "<= 1",
    ),
    (
        "epochs-not-a-number",
        with_field(BASE, "spec.stages.coreAgent.epochs", "two"),
        "spec.stages.coreAgent.epochs",
        "expected number",
    ),
    ("bad-quantity", with_field(BASE, "spec.storage.size", "lots"), "spec.storage.size", "does not match"),
    ("zero-attempts", with_field(BASE, "spec.maxAttempts", 0), "spec.maxAttempts", ">= 1"),
    (
        "bad-toleration-effect",
        with_field(BASE, "spec.resources.tolerations", [{"key": "gpu", "effect": "Sometimes"}]),
        "spec.resources.tolerations[0].effect",
        "one of NoSchedule",
    ),
    (
        "adapter-unknown-stage",
        {
            "apiVersion": "moa.dev/v1alpha1",
            "kind": "Adapter",
            "metadata": {"name": "rust-1"},
            "spec": {"language": "rust", "baseModel": "b", "artifact": "a", "stage": "staging"},
        },
        "spec.stage",
        "one of trained, evaluating, production, retired",
    ),
]


@pytest.mark.parametrize(("doc", "field", "words"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_spec_is_refused_naming_the_field(
    tmp_path: Path, doc: dict[str, Any], field: str, words: str
) -> None:
    output = refuse(tmp_path, doc)
    lines = [line for line in output.splitlines() if f" {field}: " in line]
    assert lines, f"no error names {field}:\n{output}"
    assert any(words in line for line in lines), output


def test_every_sample_is_accepted() -> None:
    samples = sorted(SAMPLES.glob("*.yaml"))
    assert {p.stem for p in samples} >= {"rust", "python", "typescript", "go"}
    result = CliRunner().invoke(manifests, ["validate", *map(str, samples)])
    assert result.exit_code == 0, result.output
    assert result.output.count(": OK") == len(samples)


def test_multi_document_file_reports_each_document(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    bad = with_field(BASE, "spec.lora.r", 0)
    path.write_text(yaml.safe_dump(BASE) + "---\n" + yaml.safe_dump(bad))
    result = CliRunner().invoke(manifests, ["validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}#0 AdapterTraining/rust: OK" in result.output
    assert f"{path}#1 AdapterTraining/rust: spec.lora.r: must be >= 1 (got 0)" in result.output


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("kind: Deployment\napiVersion: apps/v1\nmetadata: {name: x}\n", "unknown kind 'Deployment'"),
        (
            "apiVersion: moa.dev/v1\nkind: AdapterTraining\nmetadata: {name: x}\nspec: {language: rust}\n",
            "apiVersion: must be",
        ),
        (
            "apiVersion: moa.dev/v1alpha1\nkind: AdapterTraining\nspec: {language: rust}\n",
            "metadata.name: required",
        ),
        ("spec: [unclosed\n", "invalid YAML"),
    ],
)
def test_documents_that_are_not_moa_resources(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    result = CliRunner().invoke(manifests, ["validate", str(path)])
    assert result.exit_code == 1
    assert words in result.output


def test_valid_document_comes_back_with_defaults() -> None:
    result = validate_object(with_field(BASE, "spec.stages.eval.targets", {"minTestPassRate": 0.5}))
    assert result.ok, result.errors
    assert result.obj is not None
    spec = result.obj["spec"]
    assert spec["stages"]["eval"]["targets"] == {
        "minCompilePassRate": 0.9,
        "minTestPassRate": 0.5,
        "minLintCleanRate": 0.7,
        "minToolCallAccuracy": 0.95,
        "maxHallucinatedApiRate": 0.05,
        "maxMedianIterations": 4.0,
    }
    assert spec["stages"]["grpo"]["curriculum"][-1] == {"step": 3500, "maxLength": 32768}
    assert spec["lora"]["r"] == 128
