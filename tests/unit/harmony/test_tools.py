"""Tool definitions: the TypeScript rendering gpt-oss reads, and the JSON-schema checker."""

from __future__ import annotations

import pytest

from moa import harmony as h
from moa.harmony.schema import check
from moa.harmony.tools import declared_functions, typescript

WEATHER = h.Tool(
    "get_current_weather",
    "Gets the current weather in the provided location.",
    {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
            "format": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
        },
        "required": ["location"],
    },
)


def test_tools_render_as_in_the_harmony_guide() -> None:
    """docs/format.md's developer message, byte for byte."""
    tools = [h.Tool("get_location", "Gets the location of the user."), WEATHER]
    message = h.developer_message("Use a friendly tone.", tools)
    assert message.content == (
        "# Instructions\n\nUse a friendly tone.\n\n# Tools\n\n## functions\n\nnamespace functions {\n\n"
        "// Gets the location of the user.\ntype get_location = () => any;\n\n"
        "// Gets the current weather in the provided location.\ntype get_current_weather = (_: {\n"
        "// The city and state, e.g. San Francisco, CA\nlocation: string,\n"
        'format?: "celsius" | "fahrenheit", // default: celsius\n}) => any;\n\n} // namespace functions'
    )
    assert declared_functions(message.content) == {"get_location", "get_current_weather"}


def test_typescript_of_nested_and_array_types() -> None:
    schema = {
        "type": "object",
        "properties": {
            "ids": {"type": "array", "items": {"type": "integer"}, "default": [1, 2]},
            "opt": {
                "type": "object",
                "properties": {"deep": {"type": "boolean"}},
                "required": ["deep"],
                "nullable": True,
            },
            "any": {"type": ["string", "integer"]},
        },
    }
    assert typescript(schema) == (
        "{\nids?: number[], // default: [1,2]\nopt?: {\n    deep: boolean,\n    } | null,\nany?: string | number,\n}"
    )


def test_every_agent_tool_is_declared_and_checkable() -> None:
    content = h.developer_message("x", h.AGENT_TOOLS).content
    assert declared_functions(content) == {t.name for t in h.AGENT_TOOLS}
    call = h.parse_call(h.tool_call("search", {"pattern": "fn main", "max_results": 5}))
    assert call is not None and call.ok and call.arguments == {"pattern": "fn main", "max_results": 5}
    assert h.parse_call(h.final("x")) is None


@pytest.mark.parametrize(
    ("schema", "value", "problem"),
    [
        ({"type": "integer"}, True, "expected integer, got boolean"),
        ({"type": "integer"}, 1.5, "expected integer, got number"),
        ({"type": "integer", "minimum": 1}, 0, "less than the minimum"),
        ({"type": "string", "minLength": 1}, "", "shorter than 1"),
        ({"type": "string", "enum": ["a"]}, "b", "is not one of"),
        ({"type": "array", "items": {"type": "string"}}, ["a", 2], "$[1]: expected string"),
        ({"type": "object", "required": ["p"]}, {}, "missing required property 'p'"),
        (
            {"type": "object", "properties": {}, "additionalProperties": False},
            {"x": 1},
            "unknown property 'x'",
        ),
    ],
)
def test_schema_checker(schema: dict[str, object], value: object, problem: str) -> None:
    problems = check(schema, value)
    assert len(problems) == 1 and problem in problems[0], problems


def test_valid_values_pass_and_unsupported_keywords_are_refused() -> None:
    assert check({"type": "number"}, 2) == [] and check({"type": "integer"}, 2.0) == []
    assert check({"type": "string", "nullable": True}, None) == []
    with pytest.raises(ValueError, match="oneOf"):
        h.Tool("x", "d", {"type": "object", "oneOf": []})
    with pytest.raises(ValueError, match="identifier"):
        h.Tool("not a name", "d")
