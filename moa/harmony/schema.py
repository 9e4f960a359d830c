"""A tiny JSON-schema checker for the subset moa's tool definitions use.

Why not the `jsonschema` package: the subset below is all the agent tools need, the check
runs on every tool call of every trajectory (so it should be cheap), and moa.harmony stays
free of dependencies. Keywords outside the subset are rejected when a tool is defined
(`SUPPORTED`), so a schema can never silently check less than it says.
"""

from __future__ import annotations

import math
from typing import Any

SUPPORTED = frozenset(
    {"type", "description", "properties", "required", "additionalProperties", "items", "enum", "default"}
    | {"minimum", "maximum", "minLength", "minItems", "title", "examples", "nullable"}
)

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "null": (type(None),),
}


def unsupported_keywords(schema: dict[str, Any], path: str = "$") -> list[str]:
    """Keywords this checker does not implement, as `path: keyword` strings."""
    found = [f"{path}: {k}" for k in schema if k not in SUPPORTED]
    for name, sub in schema.get("properties", {}).items():
        found += unsupported_keywords(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        found += unsupported_keywords(schema["items"], f"{path}[]")
    return found


def _is(value: Any, type_name: str) -> bool:
    if isinstance(value, bool) and type_name in ("integer", "number"):
        return False  # JSON true is not a number, although Python's bool is an int
    if type_name == "integer" and isinstance(value, float):
        return value.is_integer()
    if type_name == "number" and isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, _TYPES.get(type_name, ()))


def check(schema: dict[str, Any], value: Any, path: str = "$") -> list[str]:
    """Every way `value` breaks `schema`, as `path: problem` strings (empty when valid)."""
    if value is None and schema.get("nullable"):
        return []
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_is(value, t) for t in names):
            return [f"{path}: expected {' or '.join(names)}, got {_json_type(value)}"]
    problems: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: {value} is less than the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: {value} is more than the maximum {schema['maximum']}")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        problems.append(f"{path}: shorter than {schema['minLength']} characters")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            problems.append(f"{path}: fewer than {schema['minItems']} items")
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                problems += check(schema["items"], item, f"{path}[{i}]")
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties", {})
        problems += [
            f"{path}: missing required property {k!r}" for k in schema.get("required", []) if k not in value
        ]
        for key, item in value.items():
            if key in props:
                problems += check(props[key], item, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                known = ", ".join(props) or "none"
                problems.append(f"{path}: unknown property {key!r} (known: {known})")
    return problems


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _is(value, name):
            return name
    return type(value).__name__
