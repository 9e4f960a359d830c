"""PIT's bytecode mutants as source edits: a mutant becomes a record only when its line holds
exactly one token its mutator can have changed, so the diff is right by construction.

PIT reports a mutant by class, method, line and mutator, never as source. The source line is
masked (string and char literals, comments), split into Java's operator tokens, and the
mutator's candidate tokens counted; with exactly one, and exactly one PIT mutant of that
mutator on the line, the token is swapped as PIT swaps the instruction. Anything else (two
candidates, a condition without an operator such as `if (isEmpty())`, a `<` that may be a
generic bracket) is dropped and counted by reason: never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from moa_java.pit import PitMutant

# PIT's operator swaps (its mutators' documentation), keyed by its short name.
SWAPS: dict[str, dict[str, str]] = {
    "CONDITIONALS_BOUNDARY": {"<": "<=", "<=": "<", ">": ">=", ">=": ">"},
    "NEGATE_CONDITIONALS": {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">"},
    "MATH": {
        "+": "-", "-": "+", "*": "/", "/": "*", "%": "*",
        "+=": "-=", "-=": "+=", "*=": "/=", "/=": "*=", "%=": "*=",
        "&": "|", "|": "&", "^": "&", "<<": ">>", ">>": "<<", ">>>": "<<",
        "++": "--", "--": "++",  # on a field, `x++` is an add instruction
    },
    "INCREMENTS": {"++": "--", "--": "++", "+=": "-=", "-=": "+="},  # a local's iinc
}  # fmt: skip
# Each mutator's bug class (moa.api.training.BugClass).
CLASSES: dict[str, str] = {
    "CONDITIONALS_BOUNDARY": "boundary",
    "NEGATE_CONDITIONALS": "comparison",
    "MATH": "arithmetic",
    "INCREMENTS": "arithmetic",
    "INVERT_NEGS": "arithmetic",
    "TRUE_RETURNS": "stub",
    "FALSE_RETURNS": "stub",
    "EMPTY_RETURNS": "stub",
    "NULL_RETURNS": "stub",
    "PRIMITIVE_RETURNS": "stub",
    "VOID_METHOD_CALLS": "block",
}
# The value a return-value mutator returns instead, as Java source; EMPTY_RETURNS by the
# value its description names ("replaced return value with \"\" for ...").
RETURNS = {"TRUE_RETURNS": "true", "FALSE_RETURNS": "false", "NULL_RETURNS": "null"}
_EMPTY = {
    '""': '""',
    "Collections.emptyList": "java.util.Collections.emptyList()",
    "Collections.emptySet": "java.util.Collections.emptySet()",
    "Collections.emptyMap": "java.util.Collections.emptyMap()",
    "Optional.empty": "java.util.Optional.empty()",
    "Stream.empty": "java.util.stream.Stream.empty()",
}
_PRIMITIVE_ZERO = re.compile(r"replaced (int|long|short|byte|char|float|double) return with 0\b")
_EMPTY_VALUE = re.compile(r"replaced return value with (\S+) for ")
_BOXED_ZERO = re.compile(r"replaced (Integer|Short|Byte|Character|Long|Float|Double) return value with 0\b")
_ZEROS = {"Long": "0L", "Float": "0.0f", "Double": "0.0", "Integer": "0", "Short": "(short) 0", "Byte": "(byte) 0", "Character": "(char) 0"}  # fmt: skip
_REMOVED_CALL = re.compile(r"removed call to [\w/$]+::(\w+)")

# Java's operators, longest first (so `>>>=` is one token, not `>`, `>`, `>=`).
_OPERATORS = sorted(
    [
        "=",
        ">",
        "<",
        "!",
        "~",
        "?",
        ":",
        "->",
        "::",
        "==",
        ">=",
        "<=",
        "!=",
        "&&",
        "||",
        "++",
        "--",
        "+",
        "-",
        "*",
        "/",
        "&",
        "|",
        "^",
        "%",
        "<<",
        ">>",
        ">>>",
        "+=",
        "-=",
        "*=",
        "/=",
        "&=",
        "|=",
        "^=",
        "%=",
        "<<=",
        ">>=",
        ">>>=",
    ],
    key=len,
    reverse=True,
)
_TOKEN = re.compile("|".join(re.escape(op) for op in _OPERATORS))
_UNARY = {"++", "--"}


@dataclass(frozen=True)
class Edit:
    """A source mutant: the buggy line replacing line `line` (1-based) and its operator label."""

    line: int
    buggy: str
    operator: str


def mask(line: str) -> str:
    """`line` with string and char literals' contents and comments blanked (same length), so
    operators inside them are never counted."""
    out, i, n = [], 0, len(line)
    while i < n:
        c = line[i]
        if line.startswith("//", i):
            out.append(" " * (n - i))
            break
        if line.startswith("/*", i):
            end = line.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(" " * (end - i))
            i = end
            continue
        if c in "\"'":
            j = i + 1
            while j < n and line[j] != c:
                j += 2 if line[j] == "\\" else 1
            j = min(j, n - 1)
            out.append(c + " " * (j - i - 1) + line[j])
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _tokens(masked: str) -> list[tuple[int, str]]:
    return [(m.start(), m.group()) for m in _TOKEN.finditer(masked)]


def _spaced(masked: str, at: int, token: str) -> bool:
    """A binary operator written with a blank on each side: `a < b`, never `List<String>`."""
    end = at + len(token)
    return at > 0 and masked[at - 1] == " " and end < len(masked) and masked[end] == " "


def swap(line: str, mutator: str) -> tuple[str, str] | str:
    """(buggy line, `old -> new`) for an operator mutator, or why there is no unambiguous token."""
    swaps = SWAPS[mutator]
    masked = mask(line)
    found = [(at, tok) for at, tok in _tokens(masked) if tok in swaps]
    if not found:
        return "no_token"
    if len(found) > 1:
        return "ambiguous_token"
    at, tok = found[0]
    if tok not in _UNARY and not _spaced(masked, at, tok):
        return "ambiguous_token"  # unspaced `<` or `-`: a generic bracket, a unary minus?
    new = swaps[tok]
    return line[:at] + new + line[at + len(tok) :], f"{tok} -> {new}"


def return_value(mutant: PitMutant) -> str | None:
    """The Java expression a return-value mutant returns, or None when not mapped."""
    if mutant.mutator in RETURNS:
        return RETURNS[mutant.mutator]
    if mutant.mutator == "PRIMITIVE_RETURNS" and _PRIMITIVE_ZERO.search(mutant.description):
        return "0"
    if mutant.mutator == "EMPTY_RETURNS":
        boxed = _BOXED_ZERO.search(mutant.description)
        if boxed:
            return _ZEROS[boxed[1]]
        named = _EMPTY_VALUE.search(mutant.description)
        return _EMPTY.get(named[1]) if named else None
    return None


def replace_return(line: str, value: str) -> tuple[str, str] | str:
    """`return EXPR;` (the only statement of its kind on the line, whole) -> `return VALUE;`."""
    masked = mask(line)
    returns = list(re.finditer(r"\breturn\b", masked))
    if not returns:
        return "no_token"
    if len(returns) > 1:
        return "ambiguous_token"
    start = returns[0].start()
    end = masked.find(";", start)
    if end < 0 or masked.count(";", end + 1) or masked[start:end].count("(") != masked[start:end].count(")"):
        return "statement_spans_lines"
    expr = line[start + len("return") : end].strip()
    if not expr or expr == value:
        return "no_token"
    return f"{line[:start]}return {value}{line[end:]}", f"return {expr} -> return {value}"


def remove_call(line: str, description: str) -> tuple[str, str] | str:
    """A line that is exactly one call statement of the removed method (`target.name(args);`,
    with no call among its target or arguments: those would still run in PIT's mutant) -> gone."""
    named = _REMOVED_CALL.search(description)
    if not named:
        return "unmapped_description"
    masked = mask(line).strip()
    m = re.fullmatch(rf"((?:this|super|[\w$]+)(?:\.[\w$]+)*\.)?{re.escape(named[1])}\(([^()]*)\);", masked)
    if not m:
        return "not_a_whole_call_statement"
    return "", f"removed call to {named[1]}"


def edit(mutant: PitMutant, text: str, same_line: int) -> Edit | str:
    """The source edit of `mutant` in its file's `text`, or why none is made (a metric name).

    `same_line`: PIT's mutants with this mutator on this line (more than one: which token each
    changed cannot be told from the source)."""
    lines = text.splitlines(keepends=True)
    if not 1 <= mutant.line <= len(lines):
        return "line_out_of_range"
    if same_line > 1:
        return "several_mutants_on_line"
    if mutant.method.startswith("lambda$"):
        return "in_lambda"  # a lambda's `return` is not the line's `return` statement
    raw = lines[mutant.line - 1]
    body = raw.rstrip("\r\n")
    newline = raw[len(body) :]
    made: tuple[str, str] | str
    if mutant.mutator in SWAPS:
        made = swap(body, mutant.mutator)
    elif mutant.mutator == "VOID_METHOD_CALLS":
        made = remove_call(body, mutant.description)
        if isinstance(made, str):
            return made
        # The statement's line goes; unless it is the body of a brace-less `if (c)` above it,
        # which would then govern the next statement.
        before = next((mask(x).strip() for x in reversed(lines[: mutant.line - 1]) if mask(x).strip()), "{")
        if not before.endswith((";", "{", "}")):
            return "call_is_a_braceless_body"
        return Edit(mutant.line, "", f"{mutant.mutator}: {made[1]}")
    elif (value := return_value(mutant)) is not None:
        made = replace_return(body, value)
    else:
        return "unmapped_mutator"
    if isinstance(made, str):
        return made
    buggy, change = made
    return Edit(mutant.line, buggy + newline, f"{mutant.mutator}: {change}")


def apply(text: str, e: Edit) -> str:
    lines = text.splitlines(keepends=True)
    lines[e.line - 1] = e.buggy
    return "".join(lines)
