"""Training data for the trainer stages: Harmony texts in, token ids and loss masks out.

Records are JSONL. Trajectories (SFT): `{"text": HARMONY_TEXT, ...}` rendered in training mode.
Preference pairs (IPO): `{"prompt": ..., "chosen": ..., "rejected": ...}` where `prompt` is a
Harmony text in completion mode (ending with the open `<|start|>assistant` header) and
`chosen`/`rejected` are what the assistant writes after it (`<|channel|>...<|call|>` or
`...<|return|>`). A bad record is named by its file:line and what to fix: the readers stop
there, or, given a `skipped` list, leave it out and name it there (the stages report them all).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moa import harmony as h
from moa.agent.records import DataError, build_each, read_records
from moa.harmony import tokens as T

ASSISTANT_HEADER = T.START + "assistant"


def read_trajectories(path: Path, skipped: list[str] | None = None) -> list[h.Conversation]:
    """Every trajectory under `path`, parsed; a text that is not valid Harmony names its line
    (and, given `skipped`, is left out: see `moa.agent.records`)."""

    def conversation(where: str, record: dict[str, Any]) -> h.Conversation:
        try:
            return h.parse(record["text"])
        except h.HarmonyError as exc:
            raise DataError(f"{where}: field text is not valid Harmony: {exc}") from None

    return list(build_each(read_records(path, ("text",), skipped), conversation, skipped))


@dataclass(frozen=True)
class Pair:
    prompt: str
    chosen: str
    rejected: str


def pair_of(where: str, r: dict[str, Any]) -> Pair:
    """A preference record as a Pair: a completion-mode prompt and two assistant completions."""
    try:
        if h.parse(r["prompt"]).mode != "completion":
            raise h.HarmonyError(f"must end with the open {ASSISTANT_HEADER} header")
    except h.HarmonyError as exc:
        raise DataError(f"{where}: field prompt: {exc}") from None
    for field in ("chosen", "rejected"):
        try:
            h.parse_completion(r[field])
        except h.HarmonyError as exc:
            raise DataError(f"{where}: field {field} is not an assistant completion: {exc}") from None
    return Pair(r["prompt"], r["chosen"], r["rejected"])


def read_pairs(path: Path, skipped: list[str] | None = None) -> list[Pair]:
    """Every preference pair under `path`; a bad record names its line (and, given `skipped`,
    is left out)."""
    return list(build_each(read_records(path, ("prompt", "chosen", "rejected"), skipped), pair_of, skipped))


def message_spans(text: str) -> list[tuple[int, int]]:
    """Character span of each message (from its <|start|> to the end of its terminator).

    Content never contains <|start|> (the parser guarantees it), so splitting there is exact.
    """
    starts = [i for i in range(len(text)) if text.startswith(T.START, i)]
    return [(s, e) for s, e in zip(starts, [*starts[1:], len(text)], strict=True)]


def assistant_spans(conversation: h.Conversation, text: str) -> list[tuple[int, int]]:
    """The characters the model writes: each assistant message from after `<|start|>assistant`
    through its terminator, and the whole of an assistant message that directly follows another
    (after `<|end|>` the model itself opens the next `<|start|>assistant`). At inference the prompt
    ends with `<|start|>assistant` (completion mode), so this is exactly what it learns to generate."""
    spans, previous = [], None
    for message, (start, end) in zip(conversation.messages, message_spans(text), strict=False):
        if message.role == "assistant":
            own_header = previous is not None and previous.role == "assistant"
            spans.append((start if own_header else start + len(ASSISTANT_HEADER), end))
        previous = message
    return spans


def tokenize_with_mask(tokenizer: Any, conversation: h.Conversation) -> dict[str, list[int]]:
    """input_ids and assistant_masks (1 on tokens that carry loss) for one trajectory."""
    text = h.render(conversation, "training")
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans = assistant_spans(conversation, text)
    mask = [int(any(s <= a < e for s, e in spans)) for a, _ in enc["offset_mapping"]]
    return {"input_ids": list(enc["input_ids"]), "assistant_masks": mask}


def tool_call_prompts(conversations: list[h.Conversation], limit: int | None = None) -> list[str]:
    """Held-out prompts for tool-call format accuracy: each trajectory cut just before an
    assistant message that calls a tool, rendered as a completion prompt."""
    prompts = []
    for conv in conversations:
        for i, message in enumerate(conv.messages):
            if message.is_tool_call:
                prompts.append(h.render(h.Conversation(conv.messages[:i]), "completion"))
                if limit is not None and len(prompts) >= limit:
                    return prompts
    return prompts


def is_valid_tool_call(completion: str) -> bool:
    """A completion ending in one well-formed call to a known tool with schema-valid JSON arguments."""
    try:
        messages = h.parse_completion(completion).messages
    except h.HarmonyError:
        return False
    if not messages or not messages[-1].is_tool_call:
        return False
    last = messages[-1]
    call = h.parse_call(last)
    return call is not None and call.ok and last.channel == "commentary" and last.content_type == "json"
