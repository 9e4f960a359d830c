"""Published adapter artifacts are immutable, versioned by digest, and the digest is recorded."""

from __future__ import annotations

from pathlib import Path

from moa.api.adapter import artifact_digest, publish_artifact
from moa.api.stages import StageSummary
from moa.api.training import AdapterTraining
from moa.pipeline.registry import adapter_for, export

FINAL = "checkpoints/adapters/python_coding"


def retrain(tmp: Path, weights: bytes) -> None:
    """What a retraining does to the language's final adapter folder: rewrite it in place."""
    folder = tmp / FINAL
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_model.safetensors").write_bytes(weights)
    (folder / "adapter_config.json").write_text('{"r": 8}')


def test_a_retrain_never_overwrites_the_published_artifact(tmp_path: Path) -> None:
    retrain(tmp_path, b"v1")
    first = publish_artifact(tmp_path, FINAL, "python-coding")
    retrain(tmp_path, b"v2")
    second = publish_artifact(tmp_path, FINAL, "python-coding")
    assert first.artifact != second.artifact and first.digest != second.digest
    assert (tmp_path / first.artifact / "adapter_model.safetensors").read_bytes() == b"v1"
    assert artifact_digest(tmp_path / first.artifact) == first.digest
    retrain(tmp_path, b"v1")
    assert publish_artifact(tmp_path, FINAL, "python-coding") == first  # same bytes, same folder
    assert not list((tmp_path / "checkpoints/adapters/published").glob("*.partial"))


def test_the_adapter_points_at_what_the_eval_published(tmp_path: Path) -> None:
    retrain(tmp_path, b"v1")
    published = publish_artifact(tmp_path, FINAL, "py-coding")
    # The eval's result crosses to the operator as the compact termination message.
    message = StageSummary(stage="eval", status="succeeded", published=published).compact()
    evaluation = StageSummary.model_validate_json(message)
    training = AdapterTraining.model_validate({"metadata": {"name": "py"}, "spec": {"language": "python"}})
    adapter = adapter_for(training, evaluation.metrics, evaluation.gates, evaluation.published)
    assert adapter.metadata.name == "py-coding"
    assert (adapter.spec.artifact, adapter.spec.digest) == (published.artifact, published.digest)
    assert export([adapter])["adapters"]["python"][0]["digest"] == published.digest
    # A result that names no copy (a pod whose message was lost) leaves the final folder, undigested.
    bare = adapter_for(training, {}, [], None)
    assert (bare.spec.artifact, bare.spec.digest) == (FINAL, None)
