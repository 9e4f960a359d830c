"""The pure planner: (spec, observed attempts, now) -> what to do next and what status to show.

Both orchestrators use it and nothing else decides: the operator observes workloads on the
cluster, the local runner observes processes and metrics.json files, and each only applies the
plan. Keeping the decisions here (no I/O, no clock of its own) makes every transition unit
testable and keeps the two orchestrators from drifting apart.

Rules, in order:
- `suspend`: nothing new is launched (running workloads finish on their own); phase Suspended.
- `after`: until every named AdapterTraining has succeeded, phase Waiting.
- Stages run in DESIGN.md's order; a stage starts when the previous one succeeded. `fetch` and
  `mutate` fan out one shard per source, at most `data.limits.concurrency` at once.
- A failed attempt is retried after `backoffSeconds * 2**(attempt-1)` until `maxAttempts`; then
  the training is Failed (Stalled=True, reason AttemptsExhausted).
- A gate failure is final: Failed, Stalled=True with the gate, value and threshold in the message.
- A spec change mid-run (new generation) never re-runs a stage that already succeeded; it applies
  to stages not yet started. Sources added mid-mutate are fetched, then mutated; they are
  ignored once a later stage has started (the data those stages used stays consistent).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from moa.api.common import Condition, ObjectRef, set_condition
from moa.api.gates import GateResult, blocking
from moa.api.stages import STAGES, Stage, StageSummary
from moa.api.training import AdapterTrainingSpec, Phase, StageStatus

AttemptState = Literal["pending", "running", "succeeded", "gate_failed", "failed"]

# Stages whose gates get their own condition, named e.g. `SftGatesPassed`.
_GATE_CONDITION = {
    "datagate": "DataGatesPassed",
    "sft": "SftGatesPassed",
    "ipo": "IpoGatesPassed",
    "grpo": "GrpoGatesPassed",
    "eval": "EvalGatesPassed",
}


@dataclass(frozen=True)
class Attempt:
    """One execution of a stage (or of one shard of it), as the orchestrator observed it."""

    state: AttemptState
    started_at: datetime | None = None
    finished_at: datetime | None = None
    message: str = ""
    summary: StageSummary | None = None
    workload: str | None = None  # the workload's name and kind, for status
    workload_kind: str = "Job"


@dataclass(frozen=True)
class Observed:
    """Everything the planner needs to know about the world."""

    now: datetime
    # (stage, shard) -> attempts in order; shard is None for stages that do not fan out.
    attempts: Mapping[tuple[str, str | None], Sequence[Attempt]] = field(default_factory=dict)
    # Names from spec.after -> whether that AdapterTraining has succeeded.
    dependencies: Mapping[str, bool] = field(default_factory=dict)
    generation: int | None = None


@dataclass(frozen=True)
class Launch:
    """Start one workload. `name` is deterministic so a restarted orchestrator never duplicates it."""

    stage: str
    shard: str | None
    attempt: int
    name: str


@dataclass
class Plan:
    launches: list[Launch]
    phase: Phase
    stage: str | None
    stages: list[StageStatus]
    conditions: list[Condition]
    requeue_after: float | None = None  # seconds until a backoff expires
    succeeded: bool = False
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)


def workload_name(training: str, stage: str, shard: str | None, attempt: int) -> str:
    """`{training}-{stage}[-{shard-slug}-{hash}]-{attempt}`, a valid DNS label of at most 63 chars."""
    parts = [training, stage]
    if shard is not None:
        slug = re.sub(r"[^a-z0-9]+", "-", shard.lower()).strip("-")[:20].strip("-")
        parts += [slug, hashlib.sha256(shard.encode()).hexdigest()[:6]]
    suffix = f"-{'-'.join(parts[1:])}-{attempt}"
    head = training[: 63 - len(suffix)].rstrip("-")
    return f"{head}{suffix}"


def shards_of(spec: AdapterTrainingSpec, stage: Stage) -> list[str | None]:
    return list(dict.fromkeys(spec.data.sources)) if stage.fan_out else [None]


def _backoff(spec: AdapterTrainingSpec, failures: int) -> timedelta:
    return timedelta(seconds=spec.backoff_seconds * 2 ** max(0, failures - 1))


def _gate_message(gates: Sequence[GateResult]) -> str:
    return "; ".join(g.describe() for g in gates)


@dataclass
class _ShardView:
    shard: str | None
    attempts: Sequence[Attempt]

    @property
    def last(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def failures(self) -> int:
        return sum(a.state == "failed" for a in self.attempts)


def _stage_metrics(shards: Sequence[_ShardView]) -> tuple[dict[str, float], list[GateResult]]:
    """Metrics of a stage; for a fanned-out stage, counts summed across its shards."""
    metrics: dict[str, float] = {}
    gates: list[GateResult] = []
    for view in shards:
        summary = view.last.summary if view.last else None
        if summary is None:
            continue
        for key, value in summary.metrics.items():
            metrics[key] = metrics.get(key, 0.0) + value if len(shards) > 1 else value
        gates.extend(summary.gates)
    return metrics, gates


def plan(
    name: str, spec: AdapterTrainingSpec, observed: Observed, conditions: Sequence[Condition] = ()
) -> Plan:
    """Decide the next actions and the status for AdapterTraining `name`."""
    conds = list(conditions)
    gen = observed.generation
    statuses: list[StageStatus] = []
    launches: list[Launch] = []
    events: list[tuple[str, str, str]] = []
    requeue: list[float] = []
    phase: Phase = "Running"
    current: str | None = None
    blocked: tuple[str, str] | None = None  # (reason, message) for a terminal failure

    # A stage that a later stage has already started is frozen (spec changes do not reopen it).
    started = [any(k[0] == s.name and v for k, v in observed.attempts.items()) for s in STAGES]

    waiting_on = sorted(n for n in spec.after if not observed.dependencies.get(n, False))
    may_launch = not spec.suspend and not waiting_on
    reached = True  # every earlier stage has succeeded

    for index, stage in enumerate(STAGES):
        # Per-source stages (fetch, mutate) take new sources until a whole-data stage starts.
        frozen = any(started[j] for j in range(index + 1, len(STAGES)) if not STAGES[j].fan_out)
        keys = [k for k in observed.attempts if k[0] == stage.name]
        shard_ids = [k[1] for k in keys] if frozen else shards_of(spec, stage)
        views = [_ShardView(sh, observed.attempts.get((stage.name, sh), ())) for sh in shard_ids]
        metrics, gates = _stage_metrics(views)
        status = StageStatus(name=stage.name, metrics=metrics, gates=gates)
        status.attempts = max((len(v.attempts) for v in views), default=0)
        starts = [a.started_at for v in views for a in v.attempts if a.started_at]
        status.start_time = min(starts) if starts else None
        lasts = [v.last for v in views]
        if lasts and all(a is not None and a.state == "succeeded" for a in lasts):
            status.state = "Succeeded"
            ends = [a.finished_at for a in lasts if a is not None and a.finished_at]
            status.completion_time = max(ends) if ends else None
            status.message = f"{len(views)} shards" if stage.fan_out else ""
        last_one = views[0].last if len(views) == 1 else None
        if last_one is not None and last_one.workload:
            status.workload = ObjectRef(kind=last_one.workload_kind, name=last_one.workload)
        statuses.append(status)

        if not reached or status.state == "Succeeded":
            if status.state == "Succeeded" and stage.name in _GATE_CONDITION and gates:
                conds = set_condition(
                    conds, _GATE_CONDITION[stage.name], "True", "GatesPassed", _gate_message(gates), gen
                )
            continue
        reached = False
        current = stage.name
        running = [v for v in views if v.last is not None and v.last.state in ("running", "pending")]
        status.state = "Running" if (running or may_launch) else "Pending"
        budget = spec.data.limits.concurrency - len(running) if stage.fan_out else 1 - len(running)

        for view in views:
            last = view.last
            if last is not None and last.state == "gate_failed":
                failed = blocking(last.summary.gates) if last.summary else []
                msg = _gate_message(failed) or last.message or "a gate failed"
                status.state = "Failed"
                status.message = msg
                blocked = ("GateFailed", f"stage {stage.name}: {msg}")
                if stage.name in _GATE_CONDITION:
                    conds = set_condition(conds, _GATE_CONDITION[stage.name], "False", "GateFailed", msg, gen)
                break
            if last is not None and last.state == "failed" and view.failures >= spec.max_attempts:
                status.state = "Failed"
                status.message = last.message
                label = f"{stage.name}" + (f" ({view.shard})" if view.shard else "")
                blocked = (
                    "AttemptsExhausted",
                    f"stage {label} failed {view.failures} times (maxAttempts {spec.max_attempts}): {last.message}",
                )
                break
        if blocked:
            break
        if not may_launch:
            break
        for view in views:
            last = view.last
            if budget <= 0:
                break
            if last is None or last.state == "failed":
                if last is not None and last.finished_at is not None:
                    ready_at = last.finished_at + _backoff(spec, view.failures)
                    if observed.now < ready_at:
                        requeue.append((ready_at - observed.now).total_seconds())
                        status.message = f"retrying after backoff: {last.message}"
                        continue
                attempt = len(view.attempts) + 1
                launches.append(
                    Launch(
                        stage.name, view.shard, attempt, workload_name(name, stage.name, view.shard, attempt)
                    )
                )
                kind = "Retrying" if attempt > 1 else "StageStarted"
                events.append(
                    (
                        "Normal" if attempt == 1 else "Warning",
                        kind,
                        f"{stage.name}" + (f" [{view.shard}]" if view.shard else "") + f" attempt {attempt}",
                    )
                )
                budget -= 1
        if launches or running or requeue:
            status.state = "Running"
        break

    done = reached and all(s.state == "Succeeded" for s in statuses)
    if done:
        phase = "Succeeded"
        current = None
        conds = set_condition(conds, "Ready", "True", "Succeeded", "all stages succeeded", gen)
        conds = set_condition(conds, "Reconciling", "False", "Succeeded", "", gen)
        conds = set_condition(conds, "Stalled", "False", "Succeeded", "", gen)
    elif blocked:
        phase = "Failed"
        conds = set_condition(conds, "Ready", "False", blocked[0], blocked[1], gen)
        conds = set_condition(conds, "Reconciling", "False", blocked[0], "", gen)
        conds = set_condition(conds, "Stalled", "True", blocked[0], blocked[1], gen)
        events.append(("Warning", blocked[0], blocked[1]))
    else:
        if spec.suspend:
            phase, reason, msg = (
                "Suspended",
                "Suspended",
                "spec.suspend is true: no new workloads are started",
            )
        elif waiting_on:
            phase, reason, msg = (
                "Waiting",
                "WaitingForDependencies",
                f"waiting for {', '.join(waiting_on)} (spec.after)",
            )
        else:
            reason, msg = "StageRunning", f"stage {current} running"
            if not any(s.state != "Pending" for s in statuses):
                phase = "Pending"
        conds = set_condition(conds, "Ready", "False", reason, msg, gen)
        conds = set_condition(conds, "Reconciling", "True", reason, msg, gen)
        conds = set_condition(conds, "Stalled", "False", reason, "", gen)
    return Plan(
        launches=launches,
        phase=phase,
        stage=current,
        stages=statuses,
        conditions=conds,
        requeue_after=min(requeue) if requeue else None,
        succeeded=done,
        events=events,
    )
