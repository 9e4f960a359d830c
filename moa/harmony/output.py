"""What a model samples -> messages, as tolerant as the reference's streaming parser.

`moa.harmony.parse` is strict on purpose: it guards training data, where every byte is
trained on. Model output is different: gpt-oss (and any engine in front of it) produces
shapes the strict grammar refuses but whose meaning is clear, and the reference
implementation's streaming parser accepts them. Counting them as broken would score real
tool calls as invalid in rollouts and eval, and drop them in `moa serve`. Tolerated here:

- a recipient followed by `<|constrain|>` with no space (`to=functions.x<|constrain|>json`);
- the recipient before the channel (`assistant to=functions.x<|channel|>commentary json`);
- a missing `<|message|>`: a terminator arrives inside the header, so the known header
  parts (channel, recipient, content type) are read and the rest is the content;
- the stop token (`<|call|>` / `<|return|>`) already stripped by the engine: the open last
  message is closed at the end of the text;
- a stray terminator, or whitespace, between messages; a missing `<|start|>assistant`
  before a `<|channel|>`.

Content types are kept as sampled: ` json` stays unconstrained (`Message.constrained` is
False) so re-rendering the history reproduces exactly what the model wrote.

One implementation serves both uses: `StreamParser` takes text as it is decoded (SSE
deltas) and `parse_output` feeds it a whole completion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from moa.harmony import tokens as T
from moa.harmony.model import Message, Role

# A trailing partial special token (`<|ca`) may complete in the next chunk: hold it back.
_LONGEST_TOKEN = max(len(t) for t in T.STRUCTURAL)
_WORD = re.compile(r"[^\s<]+")
# A content type as sampled after <|constrain|>: stops where content would start (`json{`).
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9_.+/-]+")
_RECIPIENT = re.compile(r"to=([^\s<{\[\"]+)")
_KNOWN_CHANNEL = re.compile("|".join(T.CHANNELS) + r"|[^\s<{\[\"]+")
_ROLES: tuple[Role, ...] = ("system", "developer", "user", "assistant")


@dataclass(frozen=True)
class Delta:
    """New output of message number `index`: its header (content empty) and the text added.
    The first delta of a message has `text == ""` unless the header and text arrive at once,
    so a client learns a tool call's name before its arguments."""

    index: int
    header: Message
    text: str


@dataclass
class ParsedOutput:
    messages: list[Message]
    # The terminator that closed the last message, or None when the text just stopped
    # (engine stripped the stop token, or generation was cut off).
    stop: str | None
    # What was tolerated, for logs and metrics (empty for a clean completion).
    repairs: list[str] = field(default_factory=list)


def parse_output(text: str, role: Role = "assistant") -> ParsedOutput:
    """Parse what a model generated after the prompt's open `<|start|>{role}` header."""
    parser = StreamParser(role)
    parser.feed(text)
    parser.finish()
    return ParsedOutput(parser.messages, parser.stop, parser.repairs)


class StreamParser:
    """Incremental, tolerant Harmony output parser: `feed` decoded text, get `Delta`s."""

    def __init__(self, role: Role = "assistant") -> None:
        self.messages: list[Message] = []
        self.stop: str | None = None
        self.repairs: list[str] = []
        self._pending = ""  # text not yet consumed (may end in a partial special token)
        self._state = "header"  # header | content | between
        self._header = str(role)  # raw header text of the open message
        self._current: Message | None = None  # header of the open message, once known
        self._content: list[str] = []

    def feed(self, text: str) -> list[Delta]:
        self._pending += text
        return self._drain(final=False)

    def finish(self) -> list[Delta]:
        """Flush at the end of generation: close an open message (its stop token was stripped)."""
        out = self._drain(final=True)
        if self._state == "header" and self._header.strip() not in ("", "assistant"):
            out += self._header_without_message(None)
        elif self._state == "content":
            self._close(None)
        return out

    # --- the state machine ------------------------------------------------------------

    def _drain(self, final: bool) -> list[Delta]:
        out: list[Delta] = []
        while self._pending:
            found = T.STRUCTURAL_RE.search(self._pending)
            if found is None:
                keep = 0 if final else _partial_token_suffix(self._pending)
                text, self._pending = (
                    self._pending[: len(self._pending) - keep],
                    self._pending[len(self._pending) - keep :],
                )
                out += self._text(text)
                if keep:
                    break
                continue
            before, token = self._pending[: found.start()], found.group()
            self._pending = self._pending[found.end() :]
            out += self._text(before)
            out += self._token(token)
        return out

    def _text(self, text: str) -> list[Delta]:
        if not text:
            return []
        if self._state == "header":
            self._header += text
            return []
        if self._state == "content":
            self._content.append(text)
            assert self._current is not None
            return [Delta(len(self.messages), self._current, text)]
        if text.strip():
            self.repairs.append(f"dropped text between messages: {text[:40]!r}")
        return []

    def _token(self, token: str) -> list[Delta]:
        if self._state == "header":
            if token == T.MESSAGE:
                self._current, _ = _read_header(self._header, complete=True)
                self._state, self._content = "content", []
                return [Delta(len(self.messages), self._current, "")]
            if token in (T.CHANNEL, T.CONSTRAIN):
                self._header += token
                return []
            if token == T.START:
                self.repairs.append("a message header without <|message|> before <|start|>")
                out = self._header_without_message(None)
                self._open("")
                return out
            self.repairs.append(f"missing <|message|>: {token} ended the header")
            return self._header_without_message(token)
        if self._state == "content":
            if token in T.TERMINATORS:
                self._close(token)
                return []
            if token in (T.START, T.CHANNEL):
                self.repairs.append(f"missing terminator before {token}")
                self._close(None)
                self._open("assistant" + token if token == T.CHANNEL else "")
                return []
            # <|message|> / <|constrain|> inside content: keep them as the text they are.
            return self._text(token)
        # between messages
        if token == T.START:
            self._open("")
        elif token == T.CHANNEL:
            self.repairs.append("missing <|start|>assistant before <|channel|>")
            self._open("assistant" + token)
        else:
            self.repairs.append(f"stray {token} between messages")
        return []

    def _open(self, header: str) -> None:
        self._state, self._header, self._current, self._content = "header", header, None, []

    def _header_without_message(self, token: str | None) -> list[Delta]:
        self._current, content = _read_header(self._header, complete=False)
        self._content = [content] if content else []
        delta = [Delta(len(self.messages), self._current, content)]
        self._close(token)
        return delta

    def _close(self, token: str | None) -> None:
        assert self._current is not None
        self.messages.append(replace(self._current, content="".join(self._content)))
        self.stop = token
        self._state, self._current, self._content = "between", None, []


def _partial_token_suffix(text: str) -> int:
    """Length of a suffix of `text` that could be the start of a special token."""
    start = text.rfind("<", max(0, len(text) - _LONGEST_TOKEN))
    if start < 0:
        return 0
    tail = text[start:]
    return len(tail) if any(t.startswith(tail) for t in T.STRUCTURAL) else 0


def _read_header(raw: str, complete: bool) -> tuple[Message, str]:
    """The message header in `raw` (between <|start|> and <|message|>) and, when the
    <|message|> was missing (`complete` False), the content that follows the header parts."""
    pos = _skip_space(raw, 0)
    author = _WORD.match(raw, pos)
    word = author.group() if author else "assistant"
    pos = author.end() if author else pos
    role_part, sep, name = word.partition(":")
    role: Role = next((r for r in _ROLES if r == role_part), "tool")
    fields: dict[str, str] = {}
    if role == "tool":
        fields["name"] = word
    elif sep and name:
        fields["name"] = name
    constrained = True
    while True:
        pos = _skip_space(raw, pos)
        if raw.startswith(T.CHANNEL, pos):
            found = _KNOWN_CHANNEL.match(raw, _skip_space(raw, pos + len(T.CHANNEL)))
            if found is None:
                pos += len(T.CHANNEL)
                continue
            fields["channel"], pos = found.group(), found.end()
        elif raw.startswith(T.CONSTRAIN, pos):
            found = _CONTENT_TYPE.match(raw, _skip_space(raw, pos + len(T.CONSTRAIN)))
            pos = found.end() if found else pos + len(T.CONSTRAIN)
            if found:
                fields["content_type"], constrained = found.group(), True
        elif (found := _RECIPIENT.match(raw, pos)) is not None:
            fields["recipient"], pos = found.group(1), found.end()
        elif (found := _WORD.match(raw, pos)) is not None and (
            key := _bare_word_field(found.group(), fields, complete)
        ):
            # A bare word: a content type as sampled (` json`, kept unconstrained) or, as
            # the reference reads it, a recipient without `to=`.
            fields[key], pos = found.group(), found.end()
            constrained = constrained and key != "content_type"
        else:
            break
    rest = raw[_skip_space(raw, pos) :]
    if complete:
        rest = ""  # header words past recipient and content type carry nothing moa uses
    message = Message(
        role,
        "",
        fields.get("channel"),
        fields.get("recipient"),
        fields.get("content_type"),
        fields.get("name"),
        constrained=constrained if fields.get("content_type") else True,
    )
    return message, rest


def _bare_word_field(word: str, fields: dict[str, str], complete: bool) -> str | None:
    """Which header field a bare word fills, or None when it is not header."""
    if not complete:
        # Without <|message|> only a content type right after a recipient is surely header.
        surely = "recipient" in fields and "content_type" not in fields and word == "json"
        return "content_type" if surely else None
    if word == "json" and "content_type" not in fields:
        return "content_type"
    if "recipient" not in fields:
        return "recipient"
    return "content_type" if "content_type" not in fields else None


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos
