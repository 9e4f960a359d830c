"""The agent loop with a local model: episodes.

One loop serves preference sampling, GRPO and eval, so the three see the same world the SFT
data was written in: the model writes an assistant turn; a tool call in it runs through the
one `moa.agent.executor.Executor` in a private workspace of the task's buggy state; the
observation is appended and the model writes the next turn; until a final answer, a turn
that is not valid Harmony / not a valid call (the episode ends there: the model broke the
protocol), or the turn limit. N episodes of one task run in lock step so each turn is one
batched generate call. What an episode leaves behind is scored by `moa.agent.judge`.

Two ways to write the context of the next turn. By default it is the conversation so far,
rendered again from the parsed messages, as `moa serve` renders a client's conversation (what
preference sampling and eval should see). With `tokens=True` (GRPO) it is the token ids the
model sampled followed by the tokens of each observation, kept in `Episode.tokens` with a mask
of which tokens the model wrote: a trainer must score the very tokens that were sampled, in the
very context they were sampled in, and a re-render or a re-tokenization could change both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moa import harmony as h
from moa.agent.executor import Caps, Executor
from moa.agent.policy import Policy, decode
from moa.agent.tasks import RepairTask
from moa.agent.workspace import Workspace
from moa.harmony import tokens as T
from moa.harmony.patch import PatchError, make_patch, parse_patch


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
    messages = tuple(h.parse_output(completion).messages)
    if not messages:
        return Turn((), None, "empty turn")
    stray = next((f for m in messages if (f := T.STRUCTURAL_RE.search(m.content))), None)
    if stray is not None:
        # The tolerant parser keeps such text as content; written back it would end the message early.
        return Turn(messages, None, f"not valid Harmony: {stray.group()} inside a message's text")
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


@dataclass
class Tokens:
    """An episode token by token: the prompt, then everything after it with `mask` 1 where the
    model wrote the token and 0 where an observation (and the next turn's header) was appended."""

    prompt: list[int]
    ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)

    def add(self, ids: list[int], written: bool) -> None:
        self.ids += ids
        self.mask += [int(written)] * len(ids)

    def trimmed(self) -> Tokens:
        """Without what follows the model's last token (an observation no turn answered)."""
        last = max((k for k, m in enumerate(self.mask) if m), default=-1)
        return Tokens(self.prompt, self.ids[: last + 1], self.mask[: last + 1])


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
    tokens: Tokens | None = None  # with run_episodes(tokens=True)

    @property
    def renderable(self) -> bool:
        """Every turn parsed as Harmony (a turn that did not cannot be written as data)."""
        return bool(self.messages) and not self.problem.startswith(("not valid Harmony", "empty turn"))

    @property
    def transcript(self) -> str:
        """What a report shows: the continuation when it renders, else the raw model turns."""
        return self.continuation if self.renderable else "".join(self.completions)

    @property
    def continuation(self) -> str:
        """Everything after the prompt's open `<|start|>assistant` header as the model wrote
        and saw it (observations included, a final answer ending in <|return|>)."""
        return self._rendered(self.messages)

    @property
    def through_last_turn(self) -> str:
        """The continuation up to the end of the model's last turn: the observation of a call
        no turn answered is left out, because the model never wrote it and a preference
        trainer would score its tokens as the model's (thousands of test-output tokens against
        a short invalid turn decided IPO's comparison)."""
        last = max((k for k, m in enumerate(self.messages) if m.role == "assistant"), default=-1)
        return self._rendered(self.messages[: last + 1])

    @staticmethod
    def _rendered(messages: list[h.Message]) -> str:
        text = h.render(h.Conversation(tuple(messages)), "training")
        return text[len(T.START + "assistant") :]


def run_episodes(
    policy: Policy, task: RepairTask, n: int, max_turns: int, caps: Caps | None = None, tokens: bool = False
) -> list[Episode]:
    """`n` agent episodes on `task`, in lock step (one batched generate per turn); `tokens`:
    continue from the sampled token ids and keep them (see the module's note)."""
    episodes = [Episode() for _ in range(n)]
    if tokens:
        prompt = policy.tokenizer(task.prompt_text(), add_special_tokens=False)["input_ids"]
        for ep in episodes:
            ep.tokens = Tokens(list(prompt))
    workspaces = [Workspace.create(task.state) for _ in range(n)]
    executors = [Executor(ws, caps=caps or Caps()) for ws in workspaces]
    touched: list[set[str]] = [set() for _ in range(n)]
    try:
        active = list(range(n))
        for turn in range(1, max_turns + 1):
            if not active:
                break
            completions = _sampled_turns(policy, task, episodes, active, tokens)
            for i, completion in completions.items():
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
                result = h.tool_result(name, obs.text)
                ep.messages.append(result)
                if ep.tokens is not None:
                    observed = h.render_message(result) + T.START + "assistant"
                    ep.tokens.add(policy.tokenizer(observed, add_special_tokens=False)["input_ids"], False)
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


def _sampled_turns(
    policy: Policy, task: RepairTask, episodes: list[Episode], active: list[int], tokens: bool
) -> dict[int, str]:
    """The next turn of each active episode that still has room in the policy's context (the
    others end as `context_limit`)."""
    if not tokens:
        prompts = {i: task.prompt_text(episodes[i].messages) for i in active}
        fits = getattr(policy, "fits", None)
        for i in [i for i in active if fits is not None and not fits(prompts[i])]:
            episodes[i].ended, episodes[i].problem = "context_limit", "the context is full"
            del prompts[i]
        return dict(zip(prompts, policy.complete(list(prompts.values())), strict=True))
    contexts: dict[int, list[int]] = {}
    for i in active:
        t = episodes[i].tokens
        assert t is not None
        contexts[i] = t.prompt + t.ids
    limit = policy.max_length
    room = {i: policy.max_new_tokens if limit is None else min(policy.max_new_tokens, limit - len(c)) for i, c in contexts.items()}  # fmt: skip
    for i in [i for i in active if room[i] < 1]:
        episodes[i].ended, episodes[i].problem = "context_limit", "the context is full"
        del contexts[i]
    if not contexts:
        return {}
    # One batched generate: every episode gets the smallest room, so none outgrows its context.
    sampled = policy.sample(list(contexts.values()), min(room[i] for i in contexts))
    out: dict[int, str] = {}
    for i, ids in zip(contexts, sampled, strict=True):
        t = episodes[i].tokens
        assert t is not None
        t.add(ids, True)
        out[i] = decode(policy.tokenizer, ids)
    return out


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
