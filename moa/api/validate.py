"""Offline validation of AdapterTraining/Adapter YAML with the rules the API server applies.

It walks the *generated* CRD schema (types, ranges, enums, patterns, required and unknown
fields), applies its defaults as the API server does, and evaluates the schema's very
`x-kubernetes-validations` CEL strings with cel-python -- no rule is re-implemented here, so
`moa manifests validate` and `kubectl apply` refuse the same specs. A last pass through the
pydantic model catches any drift between model and schema.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any

import celpy
import yaml
from celpy import celtypes
from celpy.adapter import json_to_cel
from pydantic import ValidationError

from moa.api import kube_yaml
from moa.api.common import API_VERSION
from moa.api.crd import Resource, Schema, by_kind, resource_schema

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


@dataclass
class Result:
    """One YAML document's verdict."""

    source: str
    index: int
    kind: str
    name: str
    errors: list[str] = field(default_factory=list)
    obj: dict[str, Any] | None = None  # defaults applied, when valid

    @property
    def ok(self) -> bool:
        return not self.errors

    def lines(self) -> list[str]:
        where = f"{self.source}#{self.index} {self.kind}/{self.name or '?'}"
        if self.ok:
            return [f"{where}: OK"]
        return [f"{where}: {e}" for e in self.errors]


@functools.cache
def _schema(kind: str) -> Schema:
    return resource_schema(by_kind(kind).model)


@functools.cache
def _program(rule: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_type(value: Any, type_: str | None) -> bool:
    if type_ is None:
        return True
    if isinstance(value, bool) and type_ != "boolean":
        return False
    if type_ == "integer" and isinstance(value, float) and value.is_integer():
        return True  # `1e0`: kubectl sends JSON `1`, which an integer field takes
    return isinstance(value, _TYPES[type_])


def _to_cel(value: Any, schema: Schema) -> Any:
    """A value as CEL sees it on the API server: typed by the schema (a `number` is a double)."""
    type_ = schema.get("type")
    if type_ == "object":
        props = schema.get("properties")
        if props is not None:
            return celtypes.MapType(
                {celtypes.StringType(k): _to_cel(v, props[k]) for k, v in value.items() if k in props}
            )
        if isinstance(schema.get("additionalProperties"), dict):
            sub = schema["additionalProperties"]
            return celtypes.MapType({celtypes.StringType(k): _to_cel(v, sub) for k, v in value.items()})
        return json_to_cel(value)
    if type_ == "array":
        return celtypes.ListType([_to_cel(v, schema.get("items", {})) for v in value])
    if type_ == "number":
        return celtypes.DoubleType(float(value))
    if type_ == "integer":
        return celtypes.IntType(value)
    return json_to_cel(value)


def _check_scalar(value: Any, schema: Schema, path: str, errors: list[str]) -> None:
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: must be one of {', '.join(map(str, schema['enum']))} (got {value!r})")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
        if len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{path}: longer than {schema['maxLength']} characters")
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: shorter than {schema['minLength']} characters")
    elif isinstance(value, float) and not math.isfinite(value):
        # Would pass every range check below (NaN compares false); JSON cannot even carry it.
        errors.append(f"{path}: {value} is not a finite number (the API server accepts no NaN or Infinity)")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema:
            low, excl = schema["minimum"], schema.get("exclusiveMinimum", False)
            if value < low or (excl and value == low):
                errors.append(f"{path}: must be {'>' if excl else '>='} {low} (got {value})")
        if "maximum" in schema:
            high, excl = schema["maximum"], schema.get("exclusiveMaximum", False)
            if value > high or (excl and value == high):
                errors.append(f"{path}: must be {'<' if excl else '<='} {high} (got {value})")


class _Errors(list[str]):
    """Errors, counting those that leave an object unfit for CEL (wrong type, missing field)."""

    broken = 0

    def shape(self, message: str) -> None:
        self.broken += 1
        self.append(message)


def _walk(value: Any, schema: Schema, path: str, errors: _Errors) -> Any:
    """Validate `value` against `schema`, returning it with defaults applied."""
    before = errors.broken
    type_ = schema.get("type")
    if not _is_type(value, type_):
        errors.shape(f"{path or '<root>'}: expected {type_}, got {type(value).__name__} {value!r}")
        return value
    if type_ == "object":
        value = dict(value)
        props = schema.get("properties")
        if props is not None:
            for key in value:
                if key not in props:
                    errors.append(f"{_join(path, key)}: unknown field")
            for key, sub in props.items():
                if key not in value and "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
            for key in schema.get("required", []):
                if key not in value:
                    errors.shape(f"{_join(path, key)}: required field missing")
            for key, sub in props.items():
                if key in value:
                    value[key] = _walk(value[key], sub, _join(path, key), errors)
        elif isinstance(schema.get("additionalProperties"), dict):
            sub = schema["additionalProperties"]
            value = {k: _walk(v, sub, _join(path, k), errors) for k, v in value.items()}
    elif type_ == "array":
        if len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{path}: more than {schema['maxItems']} items")
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path}: needs at least {schema['minItems']} item(s)")
        sub = schema.get("items", {})
        value = [_walk(v, sub, f"{path}[{i}]", errors) for i, v in enumerate(value)]
    else:
        _check_scalar(value, schema, path, errors)
    if errors.broken == before:  # rules need a well-typed object; range errors do not stop them
        _check_rules(value, schema, path, errors)
    return value


def _check_rules(value: Any, schema: Schema, path: str, errors: list[str]) -> None:
    rules = schema.get("x-kubernetes-validations", [])
    if not rules:
        return
    activation = {"self": _to_cel(value, schema)}
    for rule in rules:
        where = _join(path, rule.get("fieldPath", "").lstrip(".")) or "<root>"
        try:
            verdict = _program(rule["rule"]).evaluate(activation)
        except Exception as exc:  # cel-python raises for some evaluation errors, returns others
            verdict = exc
        if verdict is True or verdict == celtypes.BoolType(True):
            continue
        if isinstance(verdict, celtypes.BoolType):
            errors.append(f"{where}: {rule.get('message', 'rule failed')} (rule: {rule['rule']})")
        else:
            errors.append(f"{where}: rule could not be evaluated ({verdict}) (rule: {rule['rule']})")


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _root_view(obj: dict[str, Any]) -> dict[str, Any]:
    """What the root schema sees of metadata on the server: only name and generateName."""
    meta = _metadata(obj)
    return {**obj, "metadata": {k: v for k, v in meta.items() if k in ("name", "generateName")}}


def validate_object(obj: Any, source: str = "<input>", index: int = 0) -> Result:
    """Validate one document; on success `result.obj` is the object with defaults applied."""
    if not isinstance(obj, dict):
        return Result(source, index, "?", "", [f"<root>: expected a mapping, got {type(obj).__name__}"])
    kind = str(obj.get("kind", ""))
    meta = _metadata(obj)
    name = str(meta.get("name", ""))
    result = Result(source, index, kind or "?", name)
    try:
        resource: Resource = by_kind(kind)
    except ValueError as exc:
        result.errors.append(f"kind: {exc}")
        return result
    if obj.get("apiVersion") != API_VERSION:
        result.errors.append(f"apiVersion: must be {API_VERSION} (got {obj.get('apiVersion')!r})")
    if not name and not meta.get("generateName"):
        result.errors.append("metadata.name: required field missing")
    errors = _Errors()
    defaulted = _walk(_root_view(obj), _schema(kind), "", errors)
    result.errors.extend(errors)
    if result.errors:
        return result
    defaulted["metadata"] = meta
    try:
        resource.model.model_validate(defaulted)
    except ValidationError as exc:  # the model and the schema disagree: report, with the path
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            result.errors.append(f"{loc}: {err['msg']}")
    if not result.errors:
        result.obj = defaulted
    return result


def validate_text(text: str, source: str = "<input>") -> list[Result]:
    """Every non-empty document of a (multi-document) YAML text."""
    try:
        docs = kube_yaml.load_all(text)
    except yaml.YAMLError as exc:
        return [Result(source, 0, "?", "", [f"invalid YAML: {' '.join(str(exc).split())}"])]
    return [validate_object(doc, source, i) for i, doc in enumerate(docs) if doc is not None]
