"""The coding agent's tools, defined once, and their Harmony rendering.

Every part of moa that touches tools uses these definitions: the trajectory generator
writes calls to them, the sandboxed executor runs them, the validator and the trainer's
tool-call accuracy metric check calls against their JSON schemas, and the developer
message shows them to the model. One source, so the model is trained on exactly the
tools it is later served with.

The developer message renders tools the way gpt-oss was trained to read them: a
TypeScript-like `namespace functions { ... }` block (the rules of the openai-harmony
renderer, for the JSON-schema subset in `moa.harmony.schema`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from moa.harmony.model import FUNCTIONS, Message
from moa.harmony.schema import check, unsupported_keywords


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any] | None = field(default=None, hash=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(
                f"tool name {self.name!r} must be an identifier (it becomes a TypeScript type name)"
            )
        if self.parameters is not None:
            bad = unsupported_keywords(self.parameters)
            if bad:
                raise ValueError(
                    f"tool {self.name}: JSON-schema keywords not supported by moa.harmony.schema: {bad}"
                )


@dataclass(frozen=True)
class ToolCall:
    """A parsed tool call. `arguments` is None when the JSON did not decode to an object;
    `problems` then says why (as it does for arguments that break the schema)."""

    name: str
    arguments: dict[str, Any] | None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


_PATH = {"type": "string", "minLength": 1, "description": "Path relative to the repository root."}

READ_FILE = Tool(
    "read_file",
    "Read a text file of the repository. Lines are numbered; read a range of a long file with start_line and end_line.",
    {
        "type": "object",
        "properties": {
            "path": _PATH,
            "start_line": {"type": "integer", "minimum": 1, "description": "First line to show (1-based)."},
            "end_line": {"type": "integer", "minimum": 1, "description": "Last line to show (inclusive)."},
        },
        "required": ["path"],
        "additionalProperties": False,
    },
)
LIST_FILES = Tool(
    "list_files",
    "List the files under a folder of the repository (build outputs and VCS folders are left out).",
    {
        "type": "object",
        "properties": {
            "path": {
                "type": "string",
                "description": "Folder relative to the repository root.",
                "default": ".",
            },
            "max_depth": {
                "type": "integer",
                "minimum": 1,
                "description": "How many folder levels to descend.",
                "default": 3,
            },
        },
        "additionalProperties": False,
    },
)
SEARCH = Tool(
    "search",
    "Search the repository's files for a regular expression; returns matching lines as path:line: text.",
    {
        "type": "object",
        "properties": {
            "pattern": {
                "type": "string",
                "minLength": 1,
                "description": "A regular expression (Python syntax).",
            },
            "path": {"type": "string", "description": "Folder or file to search in.", "default": "."},
            "max_results": {
                "type": "integer",
                "minimum": 1,
                "description": "Stop after this many matches.",
                "default": 50,
            },
        },
        "required": ["pattern"],
        "additionalProperties": False,
    },
)
APPLY_PATCH = Tool(
    "apply_patch",
    "Edit files with a patch in the apply_patch format: '*** Begin Patch', then '*** Add File: PATH', "
    "'*** Delete File: PATH' or '*** Update File: PATH' sections (hunks start with '@@'; lines start with "
    "' ', '-' or '+'), then '*** End Patch'. Paths are relative. All of the patch applies, or none of it.",
    {
        "type": "object",
        "properties": {"patch": {"type": "string", "minLength": 1, "description": "The whole patch text."}},
        "required": ["patch"],
        "additionalProperties": False,
    },
)
RUN_TESTS = Tool(
    "run_tests",
    "Build the project and run its tests (sandboxed, no network). Returns pass/fail and the failing tests' output.",
    {
        "type": "object",
        "properties": {
            "tests": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Test names or selectors to run; leave out to run the whole suite.",
            },
        },
        "additionalProperties": False,
    },
)

AGENT_TOOLS: tuple[Tool, ...] = (READ_FILE, LIST_FILES, SEARCH, APPLY_PATCH, RUN_TESTS)


def by_name(tools: Sequence[Tool]) -> dict[str, Tool]:
    return {t.name: t for t in tools}


def parse_call(message: Message, tools: Sequence[Tool] = AGENT_TOOLS) -> ToolCall | None:
    """The tool call a message makes (None if it is not one), with every problem found:
    an unknown function, arguments that are not a JSON object, or break the schema."""
    if not message.is_tool_call:
        return None
    name = message.function or str(message.recipient)
    tool = by_name(tools).get(name)
    if tool is None or message.function is None:
        known = ", ".join(t.name for t in tools)
        return ToolCall(name, None, (f"unknown function {message.recipient!r} (known: {known})",))
    try:
        args = json.loads(message.content)
    except ValueError as exc:
        return ToolCall(name, None, (f"arguments are not valid JSON: {exc}",))
    if not isinstance(args, dict):
        return ToolCall(name, None, ("arguments must be a JSON object",))
    return ToolCall(name, args, tuple(check(tool.parameters or {"type": "object"}, args)))


def declared_functions(developer_content: str, namespace: str = FUNCTIONS) -> set[str]:
    """Names of the functions a developer message's tools block declares (inverse of `render_tools`)."""
    block = re.search(
        rf"^namespace {re.escape(namespace)} {{\n(.*?)^}} // namespace {re.escape(namespace)}$",
        developer_content,
        re.M | re.S,
    )
    return set(re.findall(r"^type (\w+) = ", block.group(1), re.M)) if block else set()


# --- rendering into the developer message -------------------------------------------


def render_tools(tools: Sequence[Tool], namespace: str = FUNCTIONS) -> str:
    """The `# Tools` section of a developer message."""
    lines = [f"## {namespace}\n", f"namespace {namespace} {{\n"]
    for tool in tools:
        lines += [f"// {line}" for line in tool.description.splitlines()]
        if tool.parameters is None:
            lines.append(f"type {tool.name} = () => any;\n")
        else:
            lines.append(f"type {tool.name} = (_: {typescript(tool.parameters)}) => any;\n")
    lines.append(f"}} // namespace {namespace}")
    return "# Tools\n\n" + "\n".join(lines)


def typescript(schema: dict[str, Any], indent: str = "") -> str:
    """A JSON schema as the TypeScript-like type gpt-oss reads (openai-harmony's rules)."""
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join("number" if t == "integer" else str(t) for t in kind)
    if kind == "object":
        out = f"{indent}// {schema['description']}\n" if "description" in schema else ""
        out += "{\n"
        required = set(schema.get("required", []))
        for key, prop in schema.get("properties", {}).items():
            if "title" in prop:
                out += f"{indent}// {prop['title']}\n{indent}//\n"
            if "description" in prop:
                out += f"{indent}// {prop['description']}\n"
            if prop.get("examples"):
                out += f"{indent}// Examples:\n" + "".join(
                    f'{indent}// - "{e}"\n' for e in prop["examples"] if isinstance(e, str)
                )
            type_str = typescript(prop, indent + "    ")
            if prop.get("nullable") and "null" not in type_str:
                type_str += " | null"
            out += f"{indent}{key}{'' if key in required else '?'}: {type_str},"
            if "default" in prop:
                out += f" // default: {_default(prop)}"
            out += "\n"
        return out + f"{indent}}}"
    if kind == "string":
        values = [f'"{v}"' for v in schema.get("enum", []) if isinstance(v, str)]
        return " | ".join(values) if values else "string"
    if kind in ("number", "integer"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "array":
        return f"{typescript(schema['items'], indent)}[]" if "items" in schema else "Array<any>"
    return "any"


def _default(schema: dict[str, Any]) -> str:
    value = schema["default"]
    if isinstance(value, str):
        return value if schema.get("enum") else f'"{value}"'
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
