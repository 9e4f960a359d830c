"""The judge of what an agent leaves behind.

It turns what an episode (or a single GRPO turn) did to the repository into an
`EvalOutcome` by executing it: the files it changed become one apply_patch text against the
task's untouched buggy state and go through `moa.languages.evaluation.evaluate_many`
(sandboxed, cached, parallel). A turn that breaks the protocol is an invalid tool call. A
valid episode that edited nothing leaves the buggy state, which is evaluated as it is (once
per task), so "did nothing" scores what the bug scores, never a guess.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from moa.agent.rollout import Episode
from moa.agent.tasks import RepairTask
from moa.agent.workspace import Workspace
from moa.api.records import EvalOutcome
from moa.api.training import Rewards


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
        return self.judge([episode_item(task, ep) for ep in episodes])

    def close(self) -> None:
        for ws in self._states.values():
            ws.close()
        self._states.clear()

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def episode_item(task: RepairTask, episode: Episode) -> tuple[RepairTask, str | None, str | None]:
    """What `Judge.judge` executes of an episode: an episode that broke the protocol before it
    changed anything is an invalid tool call; otherwise its changes are what is judged."""
    problem = episode.problem if episode.ended == "invalid" and episode.patch is None else None
    return task, episode.patch, problem


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
