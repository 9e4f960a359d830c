"""moa's CRDs on a real API server: it refuses what `moa manifests validate` refuses (same field),
and fills in the same defaults, so the offline validator is a faithful stand-in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from moa.api.validate import validate_object

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
# moa's samples and those of the plugins shipped as their own distributions (plugins/*/samples).
SAMPLES = sorted([*(ROOT / "manifests" / "samples").glob("*.yaml"), *ROOT.glob("plugins/*/samples/*.yaml")])


def at(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "moa.dev/v1alpha1",
        "kind": "AdapterTraining",
        "metadata": {"name": name},
        "spec": {"language": "rust", **spec},
    }


# One case per CEL rule, plus schema checks (pattern, range, enum). (document, field path)
CASES = [
    (at("alpha", lora={"alpha": 0}), "spec.lora.alpha"),
    (at("kl", stages={"ipo": {"gates": {"klWarn": 0.6, "klAbort": 0.5}}}), "spec.stages.ipo.gates.klWarn"),
    (at("temp", stages={"grpo": {"temperature": 2.5}}), "spec.stages.grpo.temperature"),
    (
        at("cur0", stages={"grpo": {"curriculum": [{"step": 5, "maxLength": 4096}]}}),
        "spec.stages.grpo.curriculum",
    ),
    (
        at(
            "curinc",
            stages={"grpo": {"curriculum": [{"step": 0, "maxLength": 4096}, {"step": 0, "maxLength": 8192}]}},
        ),
        "spec.stages.grpo.curriculum",
    ),
    (at("curlen", lora={"maxSeqLength": 2048}), "spec.stages.grpo.curriculum"),
    (
        at("teacher", data={"teacher": {"kind": "anthropic", "secretRef": {"name": "k"}}}),
        "spec.data.teacher.model",
    ),
    (at("secret", data={"teacher": {"kind": "openai", "model": "m"}}), "spec.data.teacher.secretRef"),
    (at("gpus", resources={"backend": "trainjob", "gpus": 0}), "spec.resources.gpus"),
    (at("self", after=["self"]), "spec.after"),
    (at("lang", language="C++"), "spec.language"),
    (at("gens", stages={"grpo": {"numGenerations": 1}}), "spec.stages.grpo.numGenerations"),
    (at("backend", resources={"backend": "slurm"}), "spec.resources.backend"),
]


@pytest.mark.parametrize(("doc", "field"), CASES, ids=[c[0]["metadata"]["name"] for c in CASES])
def test_server_and_offline_validator_refuse_the_same_field(
    kubectl, namespace: str, doc: dict[str, Any], field: str
) -> None:
    offline = validate_object(doc)
    assert any(e.startswith(f"{field}: ") for e in offline.errors), offline.errors
    server = kubectl(
        "apply", "--server-side", "-n", namespace, "-f", "-", check=False, input=yaml.safe_dump(doc)
    )
    assert server.returncode != 0, server.stdout
    assert field in server.stderr, server.stderr


def test_server_fills_in_the_same_defaults(kubectl, namespace: str) -> None:
    for path in SAMPLES:
        doc = yaml.safe_load(path.read_text())
        kubectl("apply", "--server-side", "-n", namespace, "-f", str(path))
        stored = json.loads(
            kubectl("get", "at", doc["metadata"]["name"], "-n", namespace, "-o", "json").stdout
        )
        offline = validate_object(doc)
        assert offline.obj is not None, offline.errors
        assert stored["spec"] == offline.obj["spec"], path.name


def test_status_subresource_and_printer_columns(kubectl, namespace: str) -> None:
    kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=yaml.safe_dump(at("rust")))
    status = {"status": {"phase": "Running", "stage": "sft", "observedGeneration": 1}}
    kubectl(
        "patch",
        "at",
        "rust",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    table = kubectl("get", "at", "-n", namespace).stdout.split()
    assert table[:5] == ["NAME", "LANGUAGE", "PHASE", "STAGE", "AGE"]
    assert table[5:9] == ["rust", "rust", "Running", "sft"]
    # The main resource ignores status; only the subresource writes it.
    kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-n",
        namespace,
        "-f",
        "-",
        input=yaml.safe_dump(at("rust", suspend=True)),
    )
    got = json.loads(kubectl("get", "at", "rust", "-n", namespace, "-o", "json").stdout)
    assert got["status"]["phase"] == "Running" and got["spec"]["suspend"] is True
