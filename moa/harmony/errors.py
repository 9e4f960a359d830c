"""The one error type of moa.harmony's text formats."""

from __future__ import annotations


class HarmonyError(ValueError):
    """A Harmony text (or a conversation to render) that does not follow the format.

    Parse errors carry the position (0-based `offset`, 1-based `line` and `column`) and
    what was `expected` there, so a bad record in a JSONL file can be reported as
    file:line plus the exact place inside its text.
    """

    def __init__(
        self,
        message: str,
        *,
        offset: int | None = None,
        line: int | None = None,
        column: int | None = None,
        expected: str | None = None,
        index: int | None = None,
    ) -> None:
        self.reason = message
        self.offset = offset
        self.line = line
        self.column = column
        self.expected = expected
        self.index = index  # the message number, when the error is about one message
        where = []
        if line is not None:
            where.append(f"line {line}, column {column} (offset {offset})")
        if index is not None:
            where.append(f"message {index}")
        text = f"{', '.join(where)}: {message}" if where else message
        if expected:
            text += f" (expected {expected})"
        super().__init__(text)

    @classmethod
    def at(cls, text: str, offset: int, message: str, expected: str | None = None) -> HarmonyError:
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        return cls(message, offset=offset, line=line, column=column, expected=expected)
