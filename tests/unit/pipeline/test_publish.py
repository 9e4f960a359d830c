"""Published adapter artifacts are immutable, versioned by digest, and the digest is recorded."""

from __future__ import annotations

from pathlib import Path

from moa.api.adapter import Adapter, AdapterSpec, artifact_digest
from moa.pipeline.registry import export, publish


def adapter(tmp: Path, weights: bytes) -> Adapter:
    folder = tmp / "checkpoints" / "adapters" / "python_coding"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_model.safetensors").write_bytes(weights)
    (folder / "adapter_config.json").write_text('{"r": 8}')
    return Adapter(
        metadata={"name": "python-coding"},
        spec=AdapterSpec(language="python", base_model="base", artifact="checkpoints/adapters/python_coding"),
    )


def test_a_retrain_never_overwrites_the_published_artifact(tmp_path: Path) -> None:
    first = publish(adapter(tmp_path, b"v1"), tmp_path)
    second = publish(adapter(tmp_path, b"v2"), tmp_path)  # the retrain rewrote the final adapter folder
    assert first.spec.artifact != second.spec.artifact
    assert first.spec.digest != second.spec.digest
    assert (tmp_path / first.spec.artifact / "adapter_model.safetensors").read_bytes() == b"v1"
    assert artifact_digest(tmp_path / first.spec.artifact) == first.spec.digest
    again = publish(adapter(tmp_path, b"v1"), tmp_path)  # the same bytes land in the same folder
    assert again.spec.artifact == first.spec.artifact
    assert export([first])["adapters"]["python"][0]["digest"] == first.spec.digest
