"""The agent loop with a local model, and the judge of what it leaves behind.

One loop serves preference sampling, GRPO and eval, so the three see the same world the SFT
data was written in: the model writes an assistant turn; a tool call in it runs through the
one `moa.datagen.executor.Executor` in a private workspace of the task's buggy state; the
observation is appended and the model writes the next turn; until a final answer, a turn
that is not valid Harmony / not a valid call (the episode ends there: the model broke the
protocol), or the turn limit. N episodes of one task run in lock step so each turn is one
batched generate call.

The judge turns what an episode (or a single GRPO turn) did to the repository into an
`EvalOutcome` by executing it: the files it changed become one apply_patch text against the
task's untouched buggy state and go through `moa.languages.evaluation.evaluate_many`
(sandboxed, cached, parallel). A turn that breaks the protocol is an invalid tool call. A
valid episode that edited nothing leaves the buggy state, which is evaluated as it is (once
per task), so "did nothing" scores what the bug scores, never a guess.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moa import harmony as h
from moa.api.records import EvalOutcome
from moa.api.training import Rewards
from moa.datagen.executor import Caps, Executor
from moa.datagen.workspace import RepoState, Workspace
from moa.harmony import tokens as T
from moa.harmony.patch import PatchError, make_patch, parse_patch
from moa.trainer.data import read_records

log = logging.getLogger("moa.trainer")


# ------------------------------------------------------------------------------ tasks


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
        return h.render(h.Conversation([*self.prompt, *extra]), "completion")


def read_tasks(path: Path, language: str, limit: int | None = None) -> list[RepairTask]:
    """Tasks from GRPO task rows (`prompt`: a completion-mode Harmony text) or trajectory rows
    (`text`: the prompt is every message before the first assistant one). Both carry the
    repository state (`source`, `diff`); a row without them names its file:line."""
    tasks: list[RepairTask] = []
    for where, row in read_records(path, ("id", "source", "diff")):
        text = row.get("prompt") or row.get("text")
        if not isinstance(text, str):
            raise ValueError(f"{where}: a task needs a string field prompt (GRPO task) or text (trajectory)")
        try:
            messages = h.parse(text).messages
        except h.HarmonyError as exc:
            raise ValueError(f"{where}: not valid Harmony: {exc}") from None
        first = next((i for i, m in enumerate(messages) if m.role == "assistant"), len(messages))
        if row.get("language", language) != language:
            continue
        tasks.append(
            RepairTask(
                id=row["id"],
                language=language,
                source=row["source"],
                diff=row["diff"],
                prompt=tuple(messages[:first]),
                file=str(row.get("file") or ""),
                context_tokens=int(row.get("context_tokens") or 0),
            )
        )
        if limit is not None and len(tasks) >= limit:
            break
    return tasks


# ------------------------------------------------------------------------------ the model


@dataclass
class Policy:
    """A model (base + adapter) that writes assistant turns: sampled at `temperature`, greedy at 0."""

    model: Any
    tokenizer: Any
    temperature: float
    max_new_tokens: int
    max_length: int | None = None  # prompt + completion tokens the model takes (None: no limit)
    batch_size: int = 8

    def fits(self, prompt: str) -> bool:
        if self.max_length is None:
            return True
        tokens = len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        return tokens + self.max_new_tokens <= self.max_length

    def complete(self, prompts: Sequence[str]) -> list[str]:
        """Completions with their special tokens, each ending at <|call|> / <|return|> (or cut)."""
        import torch

        tok = self.tokenizer
        stop = [tok.convert_tokens_to_ids(t) for t in (T.CALL, T.RETURN)]
        device = next(self.model.parameters()).device
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": self.temperature}
            if self.temperature > 0
            else {"do_sample": False}
        )
        side, tok.padding_side = tok.padding_side, "left"
        out: list[str] = []
        try:
            self.model.eval()
            for i in range(0, len(prompts), self.batch_size):
                batch = tok(
                    list(prompts[i : i + self.batch_size]),
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                )
                batch = {k: v.to(device) for k, v in batch.items()}
                with torch.no_grad():
                    ids = self.model.generate(
                        **batch,
                        max_new_tokens=self.max_new_tokens,
                        **sampling,
                        eos_token_id=stop,
                        pad_token_id=tok.pad_token_id,
                        output_router_logits=False,
                    )
                for row in ids[:, batch["input_ids"].shape[1] :]:
                    out.append(decode(tok, row.tolist()))
        finally:
            tok.padding_side = side
        return out


def decode(tokenizer: Any, ids: Sequence[int]) -> str:
    """Token ids to text with the Harmony special tokens kept and padding dropped."""
    return tokenizer.decode(list(ids), skip_special_tokens=False).replace(tokenizer.pad_token, "")


@dataclass(frozen=True)
class Turn:
    """One assistant turn as parsed: its messages, the tool call (name, arguments) if it makes
    a valid one, or why it breaks the protocol."""

    messages: tuple[h.Message, ...]
    call: tuple[str, dict[str, Any]] | None
    problem: str | None  # None: a valid turn

    @property
    def patch(self) -> str | None:
        if self.call is not None and self.call[0] == "apply_patch":
            return str(self.call[1].get("patch", ""))
        return None


def parse_turn(completion: str) -> Turn:
    """A turn is valid when it ends either in a final answer or in one schema-valid call to a
    known tool on the commentary channel. It is read with the tolerant model-output parser
    (`moa.harmony.parse_output`), as `moa serve` reads it: shapes gpt-oss really produces
    (no space before <|constrain|>, a missing <|message|>, a stripped stop token) count."""
    out = h.parse_output(completion)
    messages = tuple(out.messages)
    if not messages:
        return Turn((), None, "empty turn")
    last = messages[-1]
    if any(m.role != "assistant" for m in messages):
        return Turn(messages, None, "the turn writes a message that is not the assistant's")
    if last.is_tool_call:
        parsed = h.parse_call(last)
        if parsed is None or not parsed.ok or parsed.arguments is None:
            problems = "; ".join(parsed.problems) if parsed is not None else "unknown tool"
            return Turn(messages, None, f"invalid call to {last.recipient}: {problems}")
        if last.channel != "commentary":
            return Turn(messages, None, f"tool call on channel {last.channel!r}, not commentary")
        return Turn(messages, (parsed.name, parsed.arguments), None)
    if last.channel == "final" and last.recipient is None:
        return Turn(messages, None, None)
    return Turn(messages, None, "the turn ends in neither a tool call nor a final answer")


# ------------------------------------------------------------------------------ episodes


@dataclass
class Episode:
    """What one agent run did. `completions` are the raw model turns, the text after each
    prompt's open assistant header (what preference pairs and eval samples show)."""

    messages: list[h.Message] = field(default_factory=list)  # after the task prompt
    completions: list[str] = field(default_factory=list)
    turns: int = 0
    tool_calls: int = 0
    invalid_calls: int = 0
    ended: str = "turn_limit"  # final | invalid | turn_limit | context_limit
    problem: str = ""
    patch: str | None = None  # every change to the repository, as one apply_patch text
    green_at: int | None = None  # the turn whose run_tests first passed

    @property
    def renderable(self) -> bool:
        """Every turn parsed as Harmony (a turn that did not cannot be written as data)."""
        return bool(self.messages) and not self.problem.startswith(("not valid Harmony", "empty turn"))

    @property
    def continuation(self) -> str:
        """Everything after the prompt's open `<|start|>assistant` header as the model wrote
        and saw it (observations included, a final answer ending in <|return|>)."""
        text = h.render(h.Conversation(self.messages), "training")
        return text[len(T.START + "assistant") :]


def run_episodes(
    policy: Policy, task: RepairTask, n: int, max_turns: int, caps: Caps | None = None
) -> list[Episode]:
    """`n` agent episodes on `task`, in lock step (one batched generate per turn)."""
    episodes = [Episode() for _ in range(n)]
    workspaces = [Workspace.create(task.state) for _ in range(n)]
    executors = [Executor(ws, caps=caps or Caps()) for ws in workspaces]
    touched: list[set[str]] = [set() for _ in range(n)]
    try:
        active = list(range(n))
        for turn in range(1, max_turns + 1):
            if not active:
                break
            prompts = {i: task.prompt_text(episodes[i].messages) for i in active}
            fits = getattr(policy, "fits", None)
            for i in [i for i in active if fits is not None and not fits(prompts[i])]:
                episodes[i].ended, episodes[i].problem = "context_limit", "the context is full"
                del prompts[i]
            for i, completion in zip(prompts, policy.complete(list(prompts.values())), strict=True):
                ep, ex = episodes[i], executors[i]
                ep.turns, ep.completions = turn, [*ep.completions, completion]
                parsed = parse_turn(completion)
                ep.messages += parsed.messages
                if parsed.problem is not None:
                    ep.ended, ep.problem = "invalid", parsed.problem
                    ep.invalid_calls += 1
                    ep.tool_calls += int(bool(parsed.messages) and parsed.messages[-1].is_tool_call)
                    continue
                if parsed.call is None:
                    ep.ended = "final"
                    continue
                name, args = parsed.call
                ep.tool_calls += 1
                obs = ex.call(name, json.dumps(args))
                ep.messages.append(h.tool_result(name, obs.text))
                if obs.invalid:
                    ep.invalid_calls += 1
                if name == "apply_patch" and obs.ok and parsed.patch is not None:
                    touched[i] |= {op.path for op in parse_patch(parsed.patch).operations}
                if name == "run_tests" and ex.last_tests is not None and ex.last_tests.passed:
                    ep.green_at = ep.green_at or turn
            active = [i for i in active if episodes[i].ended == "turn_limit"]
        with Workspace.create(task.state) as pristine:
            for ep, ws, paths in zip(episodes, workspaces, touched, strict=True):
                ep.patch = changes_as_patch(pristine.root, ws.root, paths)
    finally:
        for ws in workspaces:
            ws.close()
    return episodes


def changes_as_patch(before: Path, after: Path, paths: set[str]) -> str | None:
    """The apply_patch text that takes `before` to `after` for `paths`; None when nothing changed."""

    def read(root: Path, rel: str) -> str | None:
        p = root / rel
        return p.read_text(errors="replace") if p.is_file() else None

    changes = {rel: (read(before, rel), read(after, rel)) for rel in sorted(paths)}
    try:
        return make_patch(changes)
    except PatchError:
        return None


# ------------------------------------------------------------------------------ the judge


class Judge:
    """Executes edits against each task's untouched buggy state and scores them with the
    spec's reward table. Holds one pristine workspace per task until `close`."""

    def __init__(self, rewards: Rewards, timeout_s: float = 300.0, workers: int | None = None) -> None:
        self.rewards, self.timeout_s, self.workers = rewards, timeout_s, workers
        self._states: dict[str, Workspace] = {}
        self._unchanged: dict[str, EvalOutcome] = {}

    def state(self, task: RepairTask) -> Path:
        if task.id not in self._states:
            self._states[task.id] = Workspace.create(task.state)
        return self._states[task.id].root

    def unchanged(self, task: RepairTask) -> EvalOutcome:
        """The buggy state as it is (an episode that edited nothing), evaluated once per task."""
        from moa.languages.evaluators import get_evaluator, rescore

        if task.id not in self._unchanged:
            with Workspace.create(task.state) as ws:
                outcome = get_evaluator(task.language).evaluate(ws.root, self.timeout_s)
            self._unchanged[task.id] = outcome
        return rescore(self._unchanged[task.id], self.rewards)

    def judge(self, items: Sequence[tuple[RepairTask, str | None, str | None]]) -> list[EvalOutcome]:
        """Outcomes of (task, patch, problem) items, in order: a problem is an invalid tool
        call; a patch is executed (all patches of one language in parallel); neither is the
        unchanged state."""
        from moa.languages.evaluation import evaluate_many
        from moa.languages.evaluators import invalid_call

        out: list[EvalOutcome | None] = [None] * len(items)
        by_language: dict[str, list[int]] = {}
        for k, (task, patch, problem) in enumerate(items):
            if problem is not None:
                out[k] = invalid_call(problem, self.rewards)
            elif patch is None:
                out[k] = self.unchanged(task)
            else:
                by_language.setdefault(task.language, []).append(k)
        for language, ks in by_language.items():
            candidates = [(self.state(items[k][0]), str(items[k][1])) for k in ks]
            outcomes = evaluate_many(
                language, candidates, rewards=self.rewards, timeout_s=self.timeout_s, workers=self.workers
            )
            for k, o in zip(ks, outcomes, strict=True):
                out[k] = o
        return [o for o in out if o is not None]

    def judge_episodes(self, task: RepairTask, episodes: Sequence[Episode]) -> list[EvalOutcome]:
        """An episode that broke the protocol before it changed anything is an invalid tool
        call; otherwise its changes are what is judged."""
        return self.judge(
            [
                (task, ep.patch, ep.problem if ep.ended == "invalid" and ep.patch is None else None)
                for ep in episodes
            ]
        )

    def close(self) -> None:
        for ws in self._states.values():
            ws.close()
        self._states.clear()

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def reward_stats(rewards: Sequence[float], prefix: str = "reward") -> dict[str, float]:
    """Mean, std, min, max of a list of rewards (empty when there are none)."""
    if not rewards:
        return {}
    return {
        f"{prefix}_mean": statistics.fmean(rewards),
        f"{prefix}_std": statistics.pstdev(rewards),
        f"{prefix}_min": min(rewards),
        f"{prefix}_max": max(rewards),
    }


def outcome_shares(outcomes: Sequence[str], prefix: str = "share") -> dict[str, float]:
    """`{prefix}_{outcome}`: the share of each judged outcome (empty when there are none)."""
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o] = counts.get(o, 0) + 1
    return {f"{prefix}_{o}": n / len(outcomes) for o, n in counts.items()}
