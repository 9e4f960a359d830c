"""The one idempotent reconcile of an AdapterTraining: observe, plan, apply.

Every trigger (the resource, an owned workload or pod, a periodic resync, a backoff timer)
ends here; it reads the world fresh each time, so a missed or duplicated event is harmless and
a restarted operator simply carries on. Decisions are the planner's (moa.pipeline.planner);
this module only observes workloads and writes what the planner decided.
"""

from __future__ import annotations

import functools
import logging
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import entry_points
from typing import Any

from moa.api.adapter import Published
from moa.api.common import GROUP, VERSION, set_condition
from moa.api.stages import STAGES, stage
from moa.api.training import AdapterTraining, AdapterTrainingStatus
from moa.operator import sandbox
from moa.operator.kube import Kube, Refused
from moa.operator.workloads import ADAPTERS, Context, WorkloadAdapter, adapter_for
from moa.operator.workloads.base import (
    ANNOTATION_SHARD,
    LABEL_ATTEMPT,
    LABEL_SHARD,
    LABEL_STAGE,
    LABEL_TRAINING,
)
from moa.pipeline.planner import Attempt, Launch, Observed, Plan, plan
from moa.pipeline.registry import adapter_for as adapter_resource

API = f"{GROUP}/{VERSION}"
PLURAL = "adaptertrainings"
LANGUAGE_GROUP = "moa.languages"

log = logging.getLogger("moa.operator")


@dataclass
class Outcome:
    """What one reconcile did, for the caller (requeue) and for metrics."""

    requeue_after: float | None = None
    plan: Plan | None = None
    created: list[Launch] = field(default_factory=list)  # launches whose workload this pass created
    sandbox_created: bool = False  # the namespace's sandbox NetworkPolicy / artifact PVC
    status_written: bool = False

    @property
    def idle(self) -> bool:
        """Nothing launched, nothing written: the world already matched the plan."""
        return not (self.created or self.sandbox_created or self.status_written)


@functools.cache
def known_languages() -> frozenset[str]:
    """Language plugins installed in this image (entry-point names; nothing is imported). Read
    once: scanning every distribution's metadata on each reconcile costs more than the reconcile."""
    return frozenset(ep.name for ep in entry_points(group=LANGUAGE_GROUP))


def _key(obj: dict[str, Any]) -> tuple[str, str | None, int]:
    meta = obj["metadata"]
    labels = meta.get("labels") or {}
    shard = (meta.get("annotations") or {}).get(ANNOTATION_SHARD)
    return labels[LABEL_STAGE], shard, int(labels.get(LABEL_ATTEMPT, "1"))


def observe(kube: Kube, training: AdapterTraining, namespace: str, now: datetime) -> Observed:
    name = training.metadata.name
    selector = f"{LABEL_TRAINING}={name}"
    pods = kube.list("v1", "pods", namespace, selector)
    kinds = {adapter_for(s, training.spec).kind for s in STAGES} | {"Pod"}
    found: dict[tuple[str, str | None], list[tuple[int, Attempt]]] = {}
    for kind in sorted(kinds):
        adapter = ADAPTERS[kind]
        objects = (
            pods if kind == "Pod" else kube.list(adapter.api_version, adapter.plural, namespace, selector)
        )
        for obj in objects:
            labels = obj["metadata"].get("labels") or {}
            if kind == "Pod" and obj["metadata"]["name"] != _workload_of(labels, obj):
                continue  # a pod of a Job/PyTorchJob/TrainJob, read through its workload below
            stage_name, shard, number = _key(obj)
            own = _pods_of(kube, adapter, obj, pods) if kind != "Pod" else [obj]
            found.setdefault((stage_name, shard), []).append((number, adapter.observe(obj, own)))
    attempts = {k: [a for _, a in sorted(v, key=lambda t: t[0])] for k, v in found.items()}
    deps: dict[str, bool] = {}
    for dep in training.spec.after:
        other = kube.get(API, PLURAL, namespace, dep)
        conds = ((other or {}).get("status") or {}).get("conditions") or []
        deps[dep] = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
    return Observed(now=now, attempts=attempts, dependencies=deps, generation=training.metadata.generation)


def _workload_of(labels: dict[str, str], pod: dict[str, Any]) -> str:
    """A bare stage pod is its own workload; pods of controllers have an owner."""
    owners = pod["metadata"].get("ownerReferences") or []
    return "" if any(o.get("kind") != "AdapterTraining" for o in owners) else pod["metadata"]["name"]


def _pods_of(
    kube: Kube, adapter: WorkloadAdapter, obj: dict[str, Any], pods: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The workload's pods: among the training's, those with its stage/attempt/shard labels; or,
    when its controller does not copy moa's labels onto pods, those its pod label names it on."""
    meta = obj["metadata"]
    if adapter.pod_label:
        return kube.list("v1", "pods", meta["namespace"], f"{adapter.pod_label}={meta['name']}")
    labels = meta.get("labels") or {}
    return [p for p in pods if _same_workload(p, labels)]


def _same_workload(pod: dict[str, Any], labels: dict[str, str]) -> bool:
    p = pod["metadata"].get("labels") or {}
    return all(p.get(k) == labels.get(k) for k in (LABEL_STAGE, LABEL_ATTEMPT, LABEL_SHARD))


def reconcile(
    kube: Kube, namespace: str, name: str, now: datetime | None = None, events: Executor | None = None
) -> Outcome:
    """EVENTS: where the transitions' Events are posted (None: here, before returning). The
    operator posts them from a thread of their own: they are best effort, and a training's next
    reconcile (its next stage's launch) must not wait for them."""
    now = now or datetime.now(UTC)
    obj = kube.get(API, PLURAL, namespace, name)
    if obj is None or obj["metadata"].get("deletionTimestamp"):
        return Outcome()
    training = AdapterTraining.model_validate(obj)
    uid = obj["metadata"]["uid"]
    old = training.status or AdapterTrainingStatus()
    gen = training.metadata.generation
    rlog = logging.LoggerAdapter(log, {"resource": f"{namespace}/{name}"})

    if training.spec.language not in known_languages():
        known = ", ".join(sorted(known_languages()))
        msg = f"spec.language {training.spec.language!r} has no plugin in this operator (installed: {known})"
        conds = set_condition(old.conditions, "Stalled", "True", "UnknownLanguage", msg, gen)
        conds = set_condition(conds, "Ready", "False", "UnknownLanguage", msg, gen)
        conds = set_condition(conds, "Reconciling", "False", "UnknownLanguage", "", gen)
        _write_status(
            kube,
            namespace,
            name,
            old,
            AdapterTrainingStatus(observed_generation=gen, conditions=conds, phase="Failed"),
        )
        return Outcome()

    created: list[Launch] = []
    sandbox_created = sandbox.ensure(kube, namespace, training, uid)
    observed = observe(kube, training, namespace, now)
    current = plan(name, training.spec, observed, conditions=old.conditions)
    refused = ""
    for launch in current.launches:
        ctx = Context(
            training=training, stage=stage(launch.stage), launch=launch, namespace=namespace, owner_uid=uid
        )
        try:
            kube.ensure(ctx.config_map())
            if kube.ensure(adapter_for(ctx.stage, training.spec).render(ctx)):
                created.append(launch)
                rlog.info("created %s for stage %s attempt %d", launch.name, launch.stage, launch.attempt)
        except Refused as exc:  # said in the status; a later reconcile (resync) tries again
            refused = f"stage {launch.stage}: {exc}"[:4096]
            rlog.warning("%s", refused)
            break
    if refused:
        current.conditions = set_condition(
            current.conditions, "Stalled", "True", "WorkloadRefused", refused, gen
        )
        current.events.append(("Warning", "WorkloadRefused", refused))

    adapter_ref = old.adapter
    if current.succeeded and adapter_ref is None:
        eval_status = next(s for s in current.stages if s.name == "eval")
        adapter = adapter_resource(training, eval_status.metrics, eval_status.gates, _published(observed))
        adapter.metadata.namespace = namespace
        body = adapter.to_yaml_dict()
        status = body.pop("status", None)
        kube.ensure(body)
        if status:
            kube.patch_status(API, "adapters", namespace, adapter.metadata.name, status)
        adapter_ref = {"name": adapter.metadata.name}  # type: ignore[assignment]
        current.events.append(
            ("Normal", "AdapterCreated", f"Adapter {adapter.metadata.name} (stage trained)")
        )

    before = {s.name: s.state for s in old.stages}
    for st in current.stages:
        if st.state in ("Succeeded", "Failed") and before.get(st.name) != st.state:
            kind = "Normal" if st.state == "Succeeded" else "Warning"
            current.events.append(
                (kind, f"Stage{st.state}", f"{st.name} {st.state.lower()} {st.message}".strip())
            )
    new = AdapterTrainingStatus(
        observed_generation=gen,
        conditions=current.conditions,
        phase=current.phase,
        stage=current.stage,
        stages=current.stages,
        adapter=adapter_ref,
    )
    written = _write_status(kube, namespace, name, old, new)
    if written and current.events:
        post = functools.partial(post_events, kube, event_bodies(obj, current.events, now))
        if events is None:
            post()
        else:
            events.submit(post).add_done_callback(_log_failure)
        rlog.info("phase=%s stage=%s launched=%d", current.phase, current.stage, len(current.launches))
    return Outcome(
        requeue_after=current.requeue_after,
        plan=current,
        created=created,
        sandbox_created=sandbox_created,
        status_written=written,
    )


def _published(observed: Observed) -> Published | None:
    """The adapter copy the succeeded eval attempt published, as its termination message says."""
    summary = observed.attempts[("eval", None)][-1].summary
    return summary.published if summary else None


def _write_status(
    kube: Kube, namespace: str, name: str, old: AdapterTrainingStatus, new: AdapterTrainingStatus
) -> bool:
    """Patch the status subresource when it changed; True when written."""
    fresh, stale = new.to_yaml_dict(), old.to_yaml_dict()
    if fresh == stale:
        return False
    # A merge patch keeps keys it does not mention: clear the ones that are gone (e.g. `stage`).
    kube.patch_status(API, PLURAL, namespace, name, {**dict.fromkeys(stale), **fresh})
    return True


def event_bodies(
    obj: dict[str, Any], events: list[tuple[str, str, str]], now: datetime
) -> list[dict[str, Any]]:
    """Events (type, reason, message) about OBJ, built now: a queued post keeps these small
    bodies, not the training it read."""
    meta = obj["metadata"]
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj["apiVersion"],
                "kind": obj["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "moa-operator"},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        for type_, reason, message in events
    ]


def post_events(kube: Kube, bodies: list[dict[str, Any]]) -> None:
    for body in bodies:
        kube.ensure(body)


def _log_failure(posted: Future[None]) -> None:
    if not posted.cancelled() and (exc := posted.exception()) is not None:
        log.warning("posting events failed (best effort, not retried): %s", exc)
