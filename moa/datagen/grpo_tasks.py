"""GRPO tasks: repair problems held aside from the SFT trajectories, for execution rewards.

A task carries what a rollout needs and nothing a rollout could cheat with: the Harmony
prompt prefix (system, developer with the tools, the user's report, then the open
assistant header), the repository state as a reference (source + fixed -> buggy diff,
rebuilt by `moa.datagen.workspace`), the failing tests, and an estimate of the context a
rollout will use, so the trainer's curriculum (4k/8k/16k/32k) can start with short tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from moa import harmony as h
from moa.datagen.teachers import Task, prompt_messages

CHARS_PER_TOKEN = 3.5  # o200k on code and English; an estimate, so the buckets err long
# A rollout reads the mutated file, runs the tests twice and writes a patch; the turns and
# tool results it adds beyond that are estimated as a fixed overhead per turn.
TURN_OVERHEAD_TOKENS = 300
TYPICAL_TURNS = 6


def estimate_tokens(prompt: str, file_chars: int, test_output_chars: int, diff_chars: int) -> int:
    chars = len(prompt) + file_chars + 2 * test_output_chars + 2 * diff_chars
    return int(chars / CHARS_PER_TOKEN) + TURN_OVERHEAD_TOKENS * TYPICAL_TURNS


def bucket(tokens: int, lengths: Sequence[int]) -> int:
    """The smallest curriculum length that holds the estimate (the largest if none does)."""
    fitting = [n for n in sorted(lengths) if n >= tokens]
    return fitting[0] if fitting else max(lengths)


def grpo_task(task: Task, file_chars: int, curriculum: Sequence[int]) -> dict[str, Any]:
    r = task.record
    prompt = h.render(h.Conversation(tuple(prompt_messages(task))), "completion")
    output_chars = sum(len(t.name) + len(t.excerpt) for t in r.failing_tests) or 2000
    tokens = estimate_tokens(prompt, file_chars, output_chars, len(r.diff))
    return {
        "id": task.id,
        "language": r.language,
        "source": r.source,
        "file": r.file,
        "function": r.function,
        "diff": r.diff,
        "failing_tests": [t.name for t in r.failing_tests],
        "prompt": prompt,
        "context_tokens": tokens,
        "bucket": bucket(tokens, curriculum),
    }
