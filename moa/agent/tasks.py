"""Repair tasks: what an agent is asked to fix, how its prompt is written, how it is stored.

A `Bug` is one caught mutation (a fixed -> buggy diff of a real source) as the bug a user
reports; `prompt_messages` writes its prompt (system, developer with the tools, the user's
report: the failing tests, their output and the repository's layout, never where the bug is).
Teachers work on `Bug`s. A `RepairTask` is what a rollout works on: the prompt and the
repository state it is about, read back from GRPO task rows or trajectory rows (`read_tasks`).

GRPO task rows are repair problems held aside from the SFT trajectories, for execution
rewards. A row carries what a rollout needs and nothing a rollout could cheat with: the Harmony
prompt prefix (system, developer with the tools, the user's report, then the open
assistant header), the repository state as a reference (source + fixed -> buggy diff,
rebuilt by `moa.agent.workspace`), the failing tests, and an estimate of the context a
rollout will use, so the trainer's curriculum (4k/8k/16k/32k) can start with short tasks.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from moa import harmony as h
from moa.agent.executor import Caps, Executor
from moa.agent.records import DataError, build_each, read_records
from moa.agent.workspace import RepoState, Workspace, WorkspaceError, prepared_tree
from moa.api import bad_records
from moa.api.records import MutationRecord, SourceRef

INSTRUCTIONS = (
    "You are a coding agent working in a {language} repository. Find and fix the bug the user "
    "reports. Use the tools to run the tests, read and search the code, and edit files with "
    "apply_patch. Make the smallest correct change, keep the project's style, and run the tests "
    "again before you answer."
)

_ASKS = (
    "The test suite of {package} is failing{tests}. Please find the bug and fix it.",
    "Some tests in this repository ({package}) started failing{tests}. Can you track down the cause and fix it?",
    "CI is red for {package}{tests}. Fix the underlying bug, not the tests.",
    "I think a recent change broke {package}: tests fail{tests}. Please investigate and repair it.",
    "Running the tests of {package} gives failures{tests}. Find what is wrong in the code and fix it.",
)


@dataclass(frozen=True)
class Bug:
    """A caught mutation as the bug a user reports, identified by `id`: what teachers fix and
    what a task's prompt is written from."""

    id: str
    record: MutationRecord

    @property
    def package(self) -> str:
        """The name a user would call the project by (never a host path)."""
        ref = SourceRef.parse(self.record.source)
        if ref.registry in ("path", "git"):
            return PurePosixPath(ref.name.rstrip("/")).name.removesuffix(".git")
        return ref.name


# What the user's report shows of the test output (its tail keeps the assertion and the
# runner's summary) and of the repository: enough to start from, the rest is for the tools to
# find. Sized for the smallest context the prompt must fit with room for the episode: the
# demo's 1536-token first curriculum step with the tiny model's tokenizer (about 1.7
# characters per token on test output; o200k reads 3-4).
REPORT_OUTPUT_CHARS = 600
LAYOUT_DEPTH = 2
LAYOUT_ENTRIES = 30


def failing_output(task: Bug) -> str:
    """The tail of the failing tests' output as the mutation run recorded it (each distinct
    excerpt once), in whole lines."""
    excerpts = dict.fromkeys(t.excerpt.strip() for t in task.record.failing_tests if t.excerpt.strip())
    lines = "\n\n".join(excerpts).splitlines()
    kept: list[str] = []
    while lines and sum(len(s) + 1 for s in kept) + len(lines[-1]) <= REPORT_OUTPUT_CHARS:
        kept.insert(0, lines.pop())
    return "\n".join(([f"[... {len(lines)} lines before ...]"] if lines else []) + kept)


def repository_layout(root: Path, state: RepoState) -> str:
    """The repository's folders and files as the agent's own `list_files` shows them (the same
    hidden build and dependency folders), two levels deep and capped."""
    executor = Executor(Workspace(root, state), caps=Caps(list_entries=LAYOUT_ENTRIES))
    return executor.call("list_files", {"path": ".", "max_depth": LAYOUT_DEPTH}).text


def bug_layout(bug: Bug) -> str:
    """The layout of a bug's repository, read from the prepared clean tree (a mutation renames
    no file), so no workspace is copied for it; empty when the source cannot be prepared."""
    r = bug.record
    try:
        tree = prepared_tree(r.language, r.source)
    except (OSError, WorkspaceError):
        return ""
    return repository_layout(tree, RepoState(r.language, r.source, r.diff))


def prompt_messages(task: Bug, variant: int | None = None, layout: str = "") -> list[h.Message]:
    """System, developer and user messages of a task: the user names the failing tests, pastes
    their output and, given `layout` (`repository_layout`), the repository's layout. `variant`
    picks the user's wording (default: fixed by the task id, so GRPO and eval prompts are
    reproducible)."""
    names = [t.name for t in task.record.failing_tests][:3]
    tests = f" ({', '.join(names)})" if names else ""
    if variant is None:
        variant = int(task.id[:8], 16) if re.fullmatch(r"[0-9a-f]{8,}", task.id) else len(task.id)
    report = [_ASKS[variant % len(_ASKS)].format(package=task.package, tests=tests)]
    output = failing_output(task)
    if output:
        report.append(f"The failing output:\n```\n{output}\n```")
    if layout:
        report.append(f"The repository:\n```\n{layout}\n```")
    return [
        h.system_message(),
        h.developer_message(INSTRUCTIONS.format(language=task.record.language), h.AGENT_TOOLS),
        h.user("\n\n".join(report)),
    ]


@dataclass(frozen=True)
class RepairTask:
    """A repair problem: the prompt (system, developer with the tools, user) and the buggy
    repository state it is about (source + fixed -> buggy diff)."""

    id: str
    language: str
    source: str
    diff: str
    prompt: tuple[h.Message, ...]
    file: str = ""
    context_tokens: int = 0

    @property
    def state(self) -> RepoState:
        return RepoState(self.language, self.source, self.diff)

    def prompt_text(self, extra: Sequence[h.Message] = ()) -> str:
        return h.render(h.Conversation((*self.prompt, *extra)), "completion")


def task_of(where: str, row: dict[str, Any], language: str) -> RepairTask | None:
    """A task row (GRPO task or trajectory) as a RepairTask; None for another language's row.
    DataError names what makes a row unusable."""
    text = row.get("prompt") or row.get("text")
    if not isinstance(text, str):
        raise DataError(f"{where}: a task needs a string field prompt (GRPO task) or text (trajectory)")
    try:
        messages = h.parse(text).messages
    except h.HarmonyError as exc:
        raise DataError(f"{where}: not valid Harmony: {exc}") from None
    try:
        SourceRef.parse(row["source"])  # a rollout rebuilds the repository from it
    except ValueError as exc:
        raise DataError(f"{where}: source: {exc}") from None
    if row.get("language", language) != language:
        return None
    tokens = row.get("context_tokens") or 0
    if not isinstance(tokens, int | float) or isinstance(tokens, bool) or not math.isfinite(tokens):
        raise DataError(f"{where}: context_tokens: not a finite number ({tokens!r:.40})")
    file = row.get("file") or ""
    if not isinstance(file, str):
        raise DataError(f"{where}: file: not a string ({type(file).__name__})")
    first = next((i for i, m in enumerate(messages) if m.role == "assistant"), len(messages))
    return RepairTask(
        id=row["id"],
        language=language,
        source=row["source"],
        diff=row["diff"],
        prompt=tuple(messages[:first]),
        file=file,
        context_tokens=int(tokens),
    )


def read_tasks(
    path: Path, language: str, limit: int | None = None, skipped: list[str] | None = None
) -> list[RepairTask]:
    """Tasks from GRPO task rows (`prompt`: a completion-mode Harmony text) or trajectory rows
    (`text`: the prompt is every message before the first assistant one). Both carry the
    repository state (`source`, `diff`). A row that is not a usable task raises DataError
    naming its file:line, or, given `skipped`, is named there and left out."""
    rows = read_records(path, ("id", "source", "diff"), skipped)
    tasks = build_each(rows, lambda where, row: task_of(where, row, language), skipped)
    return list(itertools.islice(tasks, limit))


def read_good_tasks(
    path: Path, language: str, limit: int | None, reports: Path, echo: Callable[[str], object]
) -> tuple[list[RepairTask], list[str]]:
    """The usable tasks, and every malformed row named `file:line: why`: all of them in
    `reports`/bad-records.txt, the first few echoed. What the stages that read tasks (GRPO,
    eval, preferences) call, so a bad row is left out rather than crashing the stage."""
    skipped: list[str] = []
    tasks = read_tasks(path, language, limit, skipped)
    bad_records.report(skipped, reports, echo)
    return tasks, skipped


# ------------------------------------------------------------------------------ GRPO task rows

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


def bug_fields(bug: Bug) -> dict[str, Any]:
    """What every stored row about a bug carries: its id and repository state (`read_tasks`
    rebuilds the state from these)."""
    r = bug.record
    return {
        "id": bug.id,
        "language": r.language,
        "source": r.source,
        "file": r.file,
        "function": r.function,
        "diff": r.diff,
    }


def grpo_task(task: Bug, file_chars: int, curriculum: Sequence[int], layout: str = "") -> dict[str, Any]:
    r = task.record
    prompt = h.render(h.Conversation(tuple(prompt_messages(task, layout=layout))), "completion")
    output_chars = sum(len(t.name) + len(t.excerpt) for t in r.failing_tests) or 2000
    tokens = estimate_tokens(prompt, file_chars, output_chars, len(r.diff))
    return {
        **bug_fields(task),
        "failing_tests": [t.name for t in r.failing_tests],
        "prompt": prompt,
        "context_tokens": tokens,
        "bucket": bucket(tokens, curriculum),
    }
