"""Harmony text -> conversation, with exact error positions.

The grammar (what `moa.harmony.render` writes; the parser is exactly as strict, so a text
that parses is one gpt-oss can be trained on):

    text      := message* [ "<|start|>assistant" ]          (the open header: a completion prompt)
    message   := "<|start|>" header "<|message|>" content ( "<|end|>" | "<|call|>" | "<|return|>" )
    header    := author words [ "<|channel|>" channel words ] [ " <|constrain|>" type ]
    author    := role | role ":" name | tool-name           (any other word is a tool, e.g. functions.read_file)
    words     := { " to=" recipient | " " type }            (recipient in either place, once)

`<|call|>` ends exactly the assistant messages that have a recipient; `<|return|>` ends
only an assistant `final` message and only at the very end of the text (in stored
history gpt-oss expects `<|end|>`); content never contains a special token. Nothing may
stand between messages: a newline there would be trained on as text.
"""

from __future__ import annotations

from dataclasses import dataclass

from moa.harmony import tokens as T
from moa.harmony.errors import HarmonyError
from moa.harmony.model import Conversation, Message, Mode, Role

_ROLES: tuple[Role, ...] = ("system", "developer", "user", "assistant")


def parse(text: str) -> Conversation:
    """Parse a whole Harmony text (any of the three render modes)."""
    return _Parser(text, text, 0).conversation()


def parse_completion(text: str, role: Role = "assistant") -> Conversation:
    """Parse what a model generated after the prompt's open `<|start|>{role}` header:
    `<|channel|>analysis<|message|>...<|end|><|start|>assistant...<|call|>`. Include the
    stop token (`<|call|>` / `<|return|>`) the sampler stopped on. Error positions refer
    to `text` itself."""
    prefix = T.START + role
    return _Parser(prefix + text, text, len(prefix)).conversation()


@dataclass
class _Header:
    role: Role
    name: str | None = None
    channel: str | None = None
    recipient: str | None = None
    content_type: str | None = None
    constrained: bool = True


class _Parser:
    def __init__(self, full: str, original: str, skip: int) -> None:
        self.text = full
        self.original = original  # the caller's text, for error positions
        self.skip = skip

    def fail(self, offset: int, message: str, expected: str | None = None) -> HarmonyError:
        return HarmonyError.at(self.original, max(0, offset - self.skip), message, expected)

    def conversation(self) -> Conversation:
        text, pos, messages = self.text, 0, []
        mode: Mode = "history"
        while pos < len(text):
            if not text.startswith(T.START, pos):
                found = T.STRUCTURAL_RE.search(text, pos)
                what = (
                    f"{found.group()!r}"
                    if found and found.start() == pos
                    else f"text {text[pos : pos + 20]!r}"
                )
                raise self.fail(pos, f"unexpected {what} between messages", T.START)
            head = pos + len(T.START)
            end = self.header_end(head)
            if end is None:
                mode = "completion"
                break
            header = self.header(head, end)
            body = end + len(T.MESSAGE)
            stop = T.STRUCTURAL_RE.search(text, body)
            if stop is None:
                raise self.fail(
                    len(text), "the text ends inside a message's content", "<|end|>, <|call|> or <|return|>"
                )
            token = stop.group()
            if token not in T.TERMINATORS:
                raise self.fail(
                    stop.start(),
                    f"special token {token} inside a message's content",
                    "<|end|>, <|call|> or <|return|>",
                )
            message = Message(
                header.role,
                text[body : stop.start()],
                header.channel,
                header.recipient,
                header.content_type,
                header.name,
                header.constrained,
            )
            self.check_terminator(message, token, stop.start(), stop.end())
            if token == T.RETURN:
                mode = "training"
            messages.append(message)
            pos = stop.end()
        return Conversation(tuple(messages), mode)

    def header_end(self, head: int) -> int | None:
        """Where the header starting at `head` ends (its <|message|>), or None for the open
        `<|start|>assistant` that ends a completion prompt."""
        for found in T.STRUCTURAL_RE.finditer(self.text, head):
            if found.group() == T.MESSAGE:
                return found.start()
            if found.group() not in (T.CHANNEL, T.CONSTRAIN):
                raise self.fail(
                    found.start(), f"unexpected {found.group()} inside a message header", T.MESSAGE
                )
        if self.text[head:] == "assistant":
            return None
        raise self.fail(len(self.text), "the text ends inside a message header", T.MESSAGE)

    def check_terminator(self, message: Message, token: str, at: int, after: int) -> None:
        if message.is_tool_call and token != T.CALL:
            raise self.fail(
                at, f"an assistant message addressed to {message.recipient} must end with <|call|>", T.CALL
            )
        if token == T.CALL and not message.is_tool_call:
            raise self.fail(
                at, "<|call|> ends only an assistant message addressed to a tool (with to=...)", T.END
            )
        if token == T.RETURN:
            if not (message.role == "assistant" and message.channel == "final"):
                raise self.fail(at, "<|return|> ends only the assistant's final-channel answer", T.END)
            if after != len(self.text):
                raise self.fail(
                    at, "<|return|> may only end the last message (earlier answers end with <|end|>)", T.END
                )

    def header(self, start: int, end: int) -> _Header:
        """Parse text[start:end], the part between <|start|> and <|message|>."""
        text = self.text
        chan = text.find(T.CHANNEL, start, end)
        cons = text.find(T.CONSTRAIN, start, end)
        if cons >= 0 and chan >= 0 and cons < chan:
            raise self.fail(cons, "<|constrain|> before <|channel|> in a header", T.CHANNEL)
        author_end = min(i for i in (chan, cons, end) if i >= 0)
        words = self.words(start, author_end, constrained=author_end == cons)
        if not words or not words[0][1]:
            raise self.fail(
                start,
                "a message header must start with its author",
                "system, developer, user, assistant or a tool name",
            )
        head = self.author(*words[0])
        self.options(head, words[1:])
        if chan >= 0:
            chan_start = chan + len(T.CHANNEL)
            chan_end = cons if cons >= 0 else end
            if text.find(T.CHANNEL, chan_start, end) >= 0:
                raise self.fail(
                    text.find(T.CHANNEL, chan_start, end), "a second <|channel|> in one header", T.MESSAGE
                )
            words = self.words(chan_start, chan_end, constrained=cons >= 0)
            if not words or not words[0][1]:
                raise self.fail(
                    chan_start,
                    "<|channel|> must be followed by the channel name",
                    "analysis, commentary or final",
                )
            head.channel = words[0][1]
            self.options(head, words[1:])
        if cons >= 0:
            type_start = cons + len(T.CONSTRAIN)
            value = text[type_start:end]
            if not value or any(c.isspace() for c in value) or "<|" in value:
                raise self.fail(
                    type_start, f"bad content type {value!r} after <|constrain|>", "one word such as json"
                )
            if head.content_type is not None:
                raise self.fail(cons, "two content types in one header", T.MESSAGE)
            head.content_type = value
        return head

    def words(self, start: int, end: int, constrained: bool) -> list[tuple[int, str]]:
        """Space-separated words with their offsets. A single trailing space is allowed only
        before <|constrain|> (`commentary to=functions.x <|constrain|>json`)."""
        segment = self.text[start:end]
        if constrained:
            if not segment.endswith(" "):
                raise self.fail(end, "a space must precede <|constrain|>", "' '")
            segment = segment[:-1]
        out, offset = [], start
        for word in segment.split(" "):
            if "<|" in word:
                raise self.fail(
                    offset + word.index("<|"), "'<|' inside a header word", "a special token or a plain word"
                )
            if any(c.isspace() for c in word):
                bad = next(i for i, c in enumerate(word) if c.isspace())
                raise self.fail(
                    offset + bad,
                    f"unexpected whitespace {word[bad]!r} in a header",
                    "single spaces between header words",
                )
            out.append((offset, word))
            offset += len(word) + 1
        return out

    def author(self, offset: int, word: str) -> _Header:
        role, sep, name = word.partition(":")
        for known in _ROLES:
            if role == known:
                if sep and not name:
                    raise self.fail(offset + len(word), f"empty author name after {role}:", "a name")
                return _Header(known, name if sep else None)
        return _Header("tool", word)

    def options(self, head: _Header, words: list[tuple[int, str]]) -> None:
        for offset, word in words:
            if not word:
                raise self.fail(
                    offset,
                    "empty word in a header (two spaces, or a trailing space)",
                    "one space between header words",
                )
            if word.startswith("to="):
                if head.recipient is not None:
                    raise self.fail(offset, "a second recipient in one header")
                if len(word) == 3:
                    raise self.fail(
                        offset + 3, "empty recipient after to=", "a recipient such as functions.read_file"
                    )
                head.recipient = word[3:]
            elif head.content_type is None:
                head.content_type, head.constrained = word, False
            else:
                raise self.fail(offset, f"unexpected header word {word!r}", "to=RECIPIENT or <|message|>")
