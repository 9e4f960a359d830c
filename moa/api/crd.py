"""CustomResourceDefinitions generated from the pydantic models.

The models are the single source: pydantic's JSON schema is rewritten into a Kubernetes
*structural* schema (refs inlined, no anyOf, OpenAPI v3.0 exclusive bounds, no
`additionalProperties` beside `properties`), with every default in it -- nested objects default
to `{}` so the API server fills in their fields, and `kubectl get -o yaml` shows the effective
spec. Cross-field rules travel as `x-kubernetes-validations` (CEL), attached in the models.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema

from moa.api import adapter, training
from moa.api.common import GROUP, VERSION

Schema = dict[str, Any]

# Keys of JSON schema that a structural schema keeps as they are.
_KEEP = {
    "type",
    "description",
    "default",
    "enum",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "required",
    "x-kubernetes-validations",
}


class _WithFactoryDefaults(GenerateJsonSchema):
    """Puts `default_factory` values into the schema too (pydantic leaves them out).

    A nested model's default becomes `{}`: the API server then applies the nested defaults
    itself, and the schema does not repeat them at every level.
    """

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data"):
            return super().get_default_value(schema)
        value = factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            if value != type(value)():
                raise ValueError(
                    f"default of {type(value).__name__} must be its own defaults to be `{{}}` in the CRD"
                )
            return {}
        return value if value is not None else NoDefault


def structural(model: type[BaseModel]) -> Schema:
    """The model as a Kubernetes structural OpenAPI v3 schema."""
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_WithFactoryDefaults)
    defs: dict[str, Schema] = raw.pop("$defs", {})
    return _convert(raw, defs)


def _convert(node: Schema, defs: dict[str, Schema]) -> Schema:
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**target, **node}  # keys next to the $ref (default, description) win
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"unions are not structural: {branches}")
        node = {**_convert(branches[0], defs), **node}
    if "const" in node:
        node["enum"] = [node.pop("const")]
    out: Schema = {k: copy.deepcopy(v) for k, v in node.items() if k in _KEEP}
    for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node:
            out[inclusive] = node[bound]
            out[bound] = True
    if "properties" in node:
        out["type"] = "object"
        out["properties"] = {name: _convert(prop, defs) for name, prop in node["properties"].items()}
    elif isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _convert(node["additionalProperties"], defs)
    if "items" in node:
        out["items"] = _convert(node["items"], defs)
    if out.get("default", 0) is None:
        del out["default"]  # `X | None = None`: absent, not null
    if "description" in out:
        out["description"] = " ".join(out["description"].split())
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def resource_schema(model: type[BaseModel]) -> Schema:
    """A whole resource's schema: apiVersion/kind/metadata as Kubernetes defines them."""
    schema = structural(model)
    props = schema["properties"]
    props["apiVersion"] = {"type": "string"}
    props["kind"] = {"type": "string"}
    props["metadata"] = {"type": "object"}
    schema.pop("default", None)
    return schema


@dataclass(frozen=True)
class Resource:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    model: type[BaseModel]
    columns: tuple[tuple[str, str, str], ...]  # (name, type, jsonPath)

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def file_name(self) -> str:
        return f"{GROUP}_{self.plural}.yaml"


RESOURCES: tuple[Resource, ...] = (
    Resource(
        kind=training.KIND,
        plural=training.PLURAL,
        short_names=("at",),
        model=training.AdapterTraining,
        columns=(
            ("Language", "string", ".spec.language"),
            ("Phase", "string", ".status.phase"),
            ("Stage", "string", ".status.stage"),
            ("Age", "date", ".metadata.creationTimestamp"),
        ),
    ),
    Resource(
        kind=adapter.KIND,
        plural=adapter.PLURAL,
        short_names=("adp",),
        model=adapter.Adapter,
        columns=(
            ("Language", "string", ".spec.language"),
            ("Desired", "string", ".spec.stage"),
            ("Stage", "string", ".status.stage"),
            ("Age", "date", ".metadata.creationTimestamp"),
        ),
    ),
)


def by_kind(kind: str) -> Resource:
    for r in RESOURCES:
        if r.kind == kind:
            return r
    raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(r.kind for r in RESOURCES)}")


def crd(resource: Resource) -> dict[str, Any]:
    """The CustomResourceDefinition object of one resource."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": resource.crd_name},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": resource.kind,
                "listKind": f"{resource.kind}List",
                "plural": resource.plural,
                "singular": resource.kind.lower(),
                "shortNames": list(resource.short_names),
                "categories": ["moa"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": n, "type": t, "jsonPath": p} for n, t, p in resource.columns
                    ],
                    "schema": {"openAPIV3Schema": resource_schema(resource.model)},
                }
            ],
        },
    }


def crd_yaml(resource: Resource) -> str:
    header = "# Generated by `moa manifests crds` from moa/api; do not edit.\n"
    return header + yaml.safe_dump(crd(resource), sort_keys=False, width=120)
