"""The committed CRDs are exactly what the models generate, and they are structural."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from moa.api.cli import manifests
from moa.api.crd import RESOURCES, crd, crd_yaml

CRDS = Path(__file__).resolve().parents[3] / "manifests" / "crds"


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}.*")
    if "items" in schema:
        yield from nodes(schema["items"], f"{path}[]")


def version(kind: str) -> dict[str, Any]:
    resource = next(r for r in RESOURCES if r.kind == kind)
    return crd(resource)["spec"]["versions"][0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.kind)
def test_committed_crd_matches_the_models(resource: Any) -> None:
    committed = CRDS / resource.file_name
    assert committed.exists(), "run `moa manifests crds --output manifests/crds`"
    assert committed.read_text() == crd_yaml(resource), (
        "CRD drifted: run `moa manifests crds --output manifests/crds`"
    )


def test_crds_command_writes_the_same_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(manifests, ["crds", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for resource in RESOURCES:
        assert (tmp_path / resource.file_name).read_text() == (CRDS / resource.file_name).read_text()
    printed = CliRunner().invoke(manifests, ["crds"]).output
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(printed)] == [r.crd_name for r in RESOURCES]


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.kind)
def test_status_subresource_printer_columns_short_name(resource: Any) -> None:
    doc = crd(resource)
    assert doc["spec"]["group"] == "moa.dev"
    assert doc["spec"]["scope"] == "Namespaced"
    assert doc["spec"]["names"]["shortNames"]
    v = doc["spec"]["versions"][0]
    assert v["name"] == "v1alpha1" and v["served"] and v["storage"]
    assert v["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in v["additionalPrinterColumns"]}
    assert columns["Language"] == ".spec.language"
    assert columns["Age"] == ".metadata.creationTimestamp"


def test_adapter_training_names_and_columns() -> None:
    names = crd(RESOURCES[0])["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "AdapterTraining",
        "adaptertrainings",
        ["at"],
    )
    columns = [c["name"] for c in version("AdapterTraining")["additionalPrinterColumns"]]
    assert columns == ["Language", "Phase", "Stage", "Age"]


def test_adapter_stage_is_a_closed_enum() -> None:
    schema = version("Adapter")["schema"]["openAPIV3Schema"]
    stage = schema["properties"]["spec"]["properties"]["stage"]
    assert stage["enum"] == ["trained", "evaluating", "production", "retired"]
    assert stage["default"] == "trained"
    assert schema["properties"]["status"]["properties"]["stage"]["enum"] == stage["enum"]


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.kind)
def test_schema_is_structural(resource: Any) -> None:
    """The rules the API server enforces on a CRD schema, checked before any server sees it."""
    schema = crd(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in nodes(schema):
        assert "type" in node, f"{path}: every node needs a type"
        assert not {"anyOf", "oneOf", "allOf", "$ref", "title", "const"} & node.keys(), path
        if "properties" in node:
            assert "additionalProperties" not in node, path
        if node.get("type") == "array":
            assert "items" in node, path
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True and "minimum" in node, path
        if "default" in node:
            assert node["default"] is not None, path


def test_defaults_are_in_the_schema() -> None:
    spec = version("AdapterTraining")["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    lora = spec["lora"]["properties"]
    assert (lora["r"]["default"], lora["alpha"]["default"], lora["maxSeqLength"]["default"]) == (
        128,
        256.0,
        32768,
    )
    assert spec["lora"]["default"] == {}, "nested defaults need their parent defaulted to {}"
    grpo = spec["stages"]["properties"]["grpo"]["properties"]
    assert [c["step"] for c in grpo["curriculum"]["default"]] == [0, 1000, 2000, 3500]
    assert grpo["temperature"]["default"] == 0.7
    assert spec["language"]["pattern"] == "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def test_lists_have_bounds_for_cel_cost() -> None:
    """Rules iterating lists need maxItems (and strings maxLength) to fit the API server's cost budget."""
    schema = version("AdapterTraining")["schema"]["openAPIV3Schema"]
    for path, node in nodes(schema):
        if node.get("type") == "array" and not path.startswith(".status"):
            assert "maxItems" in node, path
            if node["items"].get("type") == "string":
                assert "maxLength" in node["items"], path
