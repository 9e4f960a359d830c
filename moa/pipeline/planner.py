"""The pure planner: (spec, observed attempts, now) -> what to do next and what status to show.

Both orchestrators use it and nothing else decides: the operator observes workloads on the
cluster, the local runner observes processes and metrics.json files, and each only applies the
plan. Keeping the decisions here (no I/O, no clock of its own) makes every transition unit
testable and keeps the two orchestrators from drifting apart.

The rules, in the order `plan` applies them; each is a small pure function below that returns a
decision or None, and the first decision wins:
1. `current_stage`: stages run in DESIGN.md's order; the first that has not succeeded is current
   (none left: the training Succeeded). A stage that a later stage has started is frozen: a spec
   change mid-run (new generation) never re-runs it. Sources added mid-mutate are fetched, then
   mutated; they are ignored once a later, whole-data stage has started (the data those stages
   used stays consistent). Across a stage's shards counts add up and ratios are recomputed,
   never added.
2. `gate_failed`: a gate failure is final: Failed, Stalled=True with the gate, value and
   threshold in the message.
3. `attempts_exhausted`: a shard that failed `maxAttempts` times fails the training
   (Stalled=True, reason AttemptsExhausted).
4. `suspended`: nothing new is launched (running workloads finish on their own); phase Suspended.
5. `waiting_for_dependencies`: until every AdapterTraining in `after` has succeeded, phase Waiting.
6. `backing_off`: a failed attempt is retried after `backoffSeconds * 2**(attempt-1)`.
7. `launch`: otherwise a shard with no attempt (or a failed one) is launched; `fetch` and `mutate`
   fan out one shard per source, at most `data.limits.concurrency` at once, other stages one at a time.
Status only, `queued`: while every running shard of the current stage waits for admission (a
Kueue-suspended workload), the stage is Pending and Reconciling says queued: never Failed.
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


# -- what was observed, per shard and per stage -------------------------------------------------
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

    @property
    def active(self) -> bool:
        return self.last is not None and self.last.state in ("running", "pending")

    @property
    def label(self) -> str:
        return f" [{self.shard}]" if self.shard else ""


@dataclass
class _StageView:
    stage: Stage
    shards: list[_ShardView]
    status: StageStatus

    @property
    def active(self) -> list[_ShardView]:
        return [v for v in self.shards if v.active]


def stage_metrics(stage: Stage, shards: Sequence[_ShardView]) -> tuple[dict[str, float], list[GateResult]]:
    """Metrics and gates of a stage. One shard's metrics are the stage's. Across several shards
    counts add up, ratios are recomputed from the summed counts (absent when the denominator is
    0), and rates, which only mean something for one shard's time, are left out."""
    summaries = [v.last.summary for v in shards if v.last is not None and v.last.summary is not None]
    gates = [g for summary in summaries for g in summary.gates]
    if len(shards) <= 1:
        return (dict(summaries[0].metrics) if summaries else {}), gates
    derived = {r.name for r in stage.ratios} | stage.rates
    metrics: dict[str, float] = {}
    for summary in summaries:
        for key, value in summary.metrics.items():
            if key not in derived:
                metrics[key] = metrics.get(key, 0.0) + value
    for ratio in stage.ratios:
        if metrics.get(ratio.denominator):
            metrics[ratio.name] = round(metrics.get(ratio.numerator, 0.0) / metrics[ratio.denominator], 4)
    return metrics, gates


def observe_stage(spec: AdapterTrainingSpec, observed: Observed, stage: Stage, frozen: bool) -> _StageView:
    """The stage's shards (those observed, when FROZEN; else those the spec asks for) and status."""
    observed_shards = [k[1] for k in observed.attempts if k[0] == stage.name]
    shard_ids = observed_shards if frozen else shards_of(spec, stage)
    views = [_ShardView(sh, observed.attempts.get((stage.name, sh), ())) for sh in shard_ids]
    metrics, gates = stage_metrics(stage, views)
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
    only = views[0].last if len(views) == 1 else None
    if only is not None and only.workload:
        status.workload = ObjectRef(kind=only.workload_kind, name=only.workload)
    return _StageView(stage, views, status)


# -- the rules ------------------------------------------------------------------------------------
def current_stage(
    spec: AdapterTrainingSpec, observed: Observed
) -> tuple[list[_StageView], _StageView | None]:
    """Rule 1: every stage up to the first that has not succeeded (the current one; None when all did)."""
    started = [any(k[0] == s.name and v for k, v in observed.attempts.items()) for s in STAGES]
    views: list[_StageView] = []
    for index, stage in enumerate(STAGES):
        # Per-source stages (fetch, mutate) take new sources until a whole-data stage starts.
        later = [started[j] for j in range(index + 1, len(STAGES)) if not STAGES[j].fan_out]
        view = observe_stage(spec, observed, stage, frozen=any(later))
        views.append(view)
        if view.status.state != "Succeeded":
            return views, view
    return views, None


@dataclass(frozen=True)
class Blocked:
    """A terminal failure: the stage's message and the training's (reason, message)."""

    reason: Literal["GateFailed", "AttemptsExhausted"]
    stage_message: str
    message: str


def gate_failed(spec: AdapterTrainingSpec, stage: Stage, shard: _ShardView) -> Blocked | None:
    """Rule 2: a gate failure is final."""
    last = shard.last
    if last is None or last.state != "gate_failed":
        return None
    failed = blocking(last.summary.gates) if last.summary else []
    msg = _gate_message(failed) or last.message or "a gate failed"
    return Blocked("GateFailed", msg, f"stage {stage.name}: {msg}")


def attempts_exhausted(spec: AdapterTrainingSpec, stage: Stage, shard: _ShardView) -> Blocked | None:
    """Rule 3: maxAttempts failures of one shard fail the training."""
    last = shard.last
    if last is None or last.state != "failed" or shard.failures < spec.max_attempts:
        return None
    label = stage.name + (f" ({shard.shard})" if shard.shard else "")
    return Blocked(
        "AttemptsExhausted",
        last.message,
        f"stage {label} failed {shard.failures} times (maxAttempts {spec.max_attempts}): {last.message}",
    )


BLOCKING_RULES = (gate_failed, attempts_exhausted)


@dataclass(frozen=True)
class Hold:
    """Nothing new may launch: the phase and the Reconciling condition's reason and message."""

    phase: Phase
    reason: str
    message: str


def suspended(spec: AdapterTrainingSpec, observed: Observed) -> Hold | None:
    """Rule 4: spec.suspend launches nothing new."""
    if not spec.suspend:
        return None
    return Hold("Suspended", "Suspended", "spec.suspend is true: no new workloads are started")


def waiting_for_dependencies(spec: AdapterTrainingSpec, observed: Observed) -> Hold | None:
    """Rule 5: every AdapterTraining named in spec.after must have succeeded first."""
    waiting_on = sorted(n for n in spec.after if not observed.dependencies.get(n, False))
    if not waiting_on:
        return None
    return Hold("Waiting", "WaitingForDependencies", f"waiting for {', '.join(waiting_on)} (spec.after)")


HOLD_RULES = (suspended, waiting_for_dependencies)


def backing_off(spec: AdapterTrainingSpec, shard: _ShardView, now: datetime) -> float | None:
    """Rule 6: seconds left before a failed shard may be retried (None: it may be now)."""
    last = shard.last
    if last is None or last.state != "failed" or last.finished_at is None:
        return None
    ready_at = last.finished_at + timedelta(seconds=spec.backoff_seconds * 2 ** max(0, shard.failures - 1))
    return (ready_at - now).total_seconds() if now < ready_at else None


def launch(name: str, stage: Stage, shard: _ShardView) -> Launch | None:
    """Rule 7: a shard with no attempt, or whose last attempt failed, gets the next one."""
    last = shard.last
    if last is not None and last.state != "failed":
        return None
    attempt = len(shard.attempts) + 1
    return Launch(stage.name, shard.shard, attempt, workload_name(name, stage.name, shard.shard, attempt))


def queued(current: _StageView) -> str | None:
    """Status only: every active shard of the current stage waits for admission (e.g. by Kueue)."""
    active = current.active
    if not active or any(v.last is None or v.last.state != "pending" for v in active):
        return None
    return active[0].last.message if active[0].last else None


def _gate_message(gates: Sequence[GateResult]) -> str:
    return "; ".join(g.describe() for g in gates)


# -- the plan -------------------------------------------------------------------------------------
def plan(
    name: str, spec: AdapterTrainingSpec, observed: Observed, conditions: Sequence[Condition] = ()
) -> Plan:
    """Decide the next actions and the status for AdapterTraining `name`."""
    gen = observed.generation
    views, current = current_stage(spec, observed)
    conds = list(conditions)
    for view in views:  # succeeded stages with gates say so in their own condition
        if view.status.state == "Succeeded" and view.stage.name in _GATE_CONDITION and view.status.gates:
            msg = _gate_message(view.status.gates)
            conds = set_condition(conds, _GATE_CONDITION[view.stage.name], "True", "GatesPassed", msg, gen)
    statuses = [v.status for v in views]
    if current is None:
        conds = set_condition(conds, "Ready", "True", "Succeeded", "all stages succeeded", gen)
        conds = set_condition(conds, "Reconciling", "False", "Succeeded", "", gen)
        conds = set_condition(conds, "Stalled", "False", "Succeeded", "", gen)
        return Plan([], "Succeeded", None, statuses, conds, succeeded=True)

    stage, status = current.stage, current.status
    blocked = next(
        (b for shard in current.shards for rule in BLOCKING_RULES if (b := rule(spec, stage, shard))), None
    )
    if blocked is not None:
        status.state, status.message = "Failed", blocked.stage_message
        if blocked.reason == "GateFailed" and stage.name in _GATE_CONDITION:
            gate = _GATE_CONDITION[stage.name]
            conds = set_condition(conds, gate, "False", "GateFailed", blocked.stage_message, gen)
        conds = set_condition(conds, "Ready", "False", blocked.reason, blocked.message, gen)
        conds = set_condition(conds, "Reconciling", "False", blocked.reason, "", gen)
        conds = set_condition(conds, "Stalled", "True", blocked.reason, blocked.message, gen)
        events = [("Warning", blocked.reason, blocked.message)]
        return Plan([], "Failed", stage.name, statuses, conds, events=events)

    hold = next((h for rule in HOLD_RULES if (h := rule(spec, observed))), None)
    launches: list[Launch] = []
    events = []
    requeue: list[float] = []
    if hold is None:
        budget = (spec.data.limits.concurrency if stage.fan_out else 1) - len(current.active)
        for shard in current.shards:
            if budget <= 0:
                break
            wait = backing_off(spec, shard, observed.now)
            if wait is not None:
                requeue.append(wait)
                status.message = f"retrying after backoff: {shard.last.message if shard.last else ''}"
                continue
            if (next_launch := launch(name, stage, shard)) is not None:
                launches.append(next_launch)
                first = next_launch.attempt == 1
                events.append(
                    (
                        "Normal" if first else "Warning",
                        "StageStarted" if first else "Retrying",
                        f"{stage.name}{shard.label} attempt {next_launch.attempt}",
                    )
                )
                budget -= 1
    status.state = "Running" if (current.active or launches or requeue or hold is None) else "Pending"
    waiting = queued(current) if not launches else None
    if waiting is not None:
        status.state, status.message = "Pending", waiting

    phase: Phase = "Running"
    if hold is not None:
        phase, reason, msg = hold.phase, hold.reason, hold.message
    elif waiting is not None:
        reason, msg = "Queued", f"stage {stage.name} {waiting}"
    else:
        reason, msg = "StageRunning", f"stage {stage.name} running"
        if all(s.state == "Pending" for s in statuses):
            phase = "Pending"
    conds = set_condition(conds, "Ready", "False", reason, msg, gen)
    conds = set_condition(conds, "Reconciling", "True", reason, msg, gen)
    conds = set_condition(conds, "Stalled", "False", reason, "", gen)
    return Plan(
        launches,
        phase,
        stage.name,
        statuses,
        conds,
        requeue_after=min(requeue) if requeue else None,
        events=events,
    )
