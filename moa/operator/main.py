"""kopf wiring: every trigger funnels into one reconcile per AdapterTraining.

- events of AdapterTrainings and Adapters, and the end (or deletion) of the workloads and pods
  the operator labelled; every event first updates the informer cache reconcile reads from;
- a periodic resync that prunes the cache (a metadata-only relist) and reconciles every training
  no event reconciled within the period (a level-triggered safety net that never takes more than
  a quarter of the reconcile threads);
- backoff timers from the planner's `requeue_after`.
Handlers only start a reconcile (they do not wait for it), so kopf drops each event as soon as
the cache has it. Only `on.event` handlers are used: no finalizers, so deleting a training never
waits for the operator (owner references clean up its workloads). Reconciles run in threads,
serialised per training; different trainings reconcile concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from moa.operator import adapters as adapter_controller
from moa.operator import heap_profile
from moa.operator import observability as obs
from moa.operator.cache import RELIST_PAGE, CachedKube, Kind
from moa.operator.kube import Kube, load_client
from moa.operator.reconcile import API, PLURAL, reconcile
from moa.operator.workloads import ADAPTERS, WorkloadAdapter
from moa.operator.workloads.base import LABEL_TRAINING

log = logging.getLogger("moa.operator")


TRAININGS: Kind = (API, PLURAL)
ADAPTER_RESOURCES: Kind = (API, adapter_controller.PLURAL)
PODS: Kind = ("v1", "pods")
# The training a workload event is about: (namespace, the object's labels) -> its name, if any.
TrainingOf = Callable[[str, dict[str, str]], Awaitable[str | None]]
WATCHED: tuple[Kind, ...] = (
    TRAININGS,
    ADAPTER_RESOURCES,
    *sorted({(a.api_version, a.plural) for a in ADAPTERS.values()}),
)


# Reconcile threads. A reconcile mostly waits for the API server (its reads come from the cache,
# its writes do not), so there are more threads than cores: at 200 trainings 8 were all waiting
# on writes while finished workloads queued for a free one.
WORKERS = 16
EVENT_THREADS = 4


def informer_cache(api: Any) -> CachedKube:
    """The cache the operator reads: every watched kind, indexed by the training that owns it."""
    return CachedKube(api, WATCHED, with_spec=WATCHED[:2], index_label=LABEL_TRAINING)


class Operator:
    def __init__(
        self, kube: Kube, resync_s: float = 60.0, workers: int = WORKERS, namespaces: list[str] | None = None
    ) -> None:
        self.kube = kube
        self.namespaces = namespaces or []
        self.resync_s = resync_s
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile")
        # Events, off the trainings' reconciles (best effort; one reconcile's in order). Four
        # threads: at 200 trainings one fell behind the transitions on a loaded API server.
        self.events = ThreadPoolExecutor(max_workers=EVENT_THREADS, thread_name_prefix="events")
        # The resync's reconciles take at most a quarter of the workers: with hundreds of
        # trainings they would otherwise fill the pool's queue, and the reconcile a finished
        # workload asks for would wait behind all of them.
        self.background_slots = asyncio.Semaphore(max(1, workers // 4))
        self.reconciled_at: dict[tuple[str, str], float] = {}
        self.locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
        self.inflight: set[tuple[str, str]] = set()
        self.dirty: set[tuple[str, str]] = set()
        self.timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self.tasks: set[asyncio.Future[None]] = set()
        self.adapter_lock = threading.Lock()

    def spawn(self, coro: Any) -> None:
        """Run a coroutine in the background, keeping a reference until it finishes."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _reconcile(self, namespace: str, name: str) -> float | None:
        with self.locks[(namespace, name)]:
            started = time.monotonic()
            requests_before = self.kube.thread_requests()
            try:
                outcome = reconcile(self.kube, namespace, name, events=self.events)
            except Exception as exc:
                obs.ERRORS.labels(type(exc).__name__).inc()
                obs.RECONCILES.labels("error").inc()
                log.exception("reconcile failed", extra={"resource": f"{namespace}/{name}"})
                return 5.0  # retry soon; the next trigger may also come first
            finally:
                obs.LATENCY.observe(time.monotonic() - started)
                for method, count in self.kube.requests.items():
                    obs.API_REQUESTS.labels(method).set(count)
            obs.RECONCILES.labels("ok").inc()
            self.reconciled_at[(namespace, name)] = time.monotonic()
            made = self.kube.thread_requests() - requests_before
            obs.RECONCILE_REQUESTS.labels("idle" if outcome.idle else "acting").observe(made)
            obs.count_workloads(outcome.created)
            if outcome.plan:
                obs.record_stages(f"{namespace}/{name}", [s.state for s in outcome.plan.stages])
            else:
                obs.forget(f"{namespace}/{name}")
            return outcome.requeue_after

    def reconcile_adapters(self, namespace: str, name: str) -> None:
        """Reconcile an Adapter, then those it stopped blocking. One at a time: two adapters of a
        language promoted in the same Git commit must not both see no production rival."""
        todo = [name]
        with self.adapter_lock:
            while todo:
                todo += adapter_controller.reconcile(self.kube, namespace, todo.pop(0))

    def fresh(self, key: tuple[str, str]) -> bool:
        """Reconciled within the last resync period: the resync has nothing to catch up on."""
        return time.monotonic() - self.reconciled_at.get(key, -math.inf) < self.resync_s

    async def trigger_background(self, namespace: str, name: str) -> None:
        """The resync's trigger: waits for a background slot, and skips a training that an event
        reconciled meanwhile. It marks nothing in flight while it waits, so an event's trigger
        for the same training runs at once instead of queueing behind it."""
        async with self.background_slots:
            if not self.fresh((namespace, name)):
                await self.trigger(namespace, name)

    async def trigger(self, namespace: str, name: str) -> None:
        """Reconcile now; triggers that arrive meanwhile collapse into one more pass afterwards.

        Event storms (every pod and job update of every training) then cost one reconcile per
        training at a time instead of one per event.
        """
        key = (namespace, name)
        if key in self.inflight:
            self.dirty.add(key)
            return
        self.inflight.add(key)
        loop = asyncio.get_running_loop()
        try:
            while True:
                self.dirty.discard(key)
                requeue = await loop.run_in_executor(self.pool, self._reconcile, namespace, name)
                if key not in self.dirty:
                    break
        finally:
            self.inflight.discard(key)
        if key in self.timers:
            self.timers.pop(key).cancel()
        if requeue is not None:
            self.timers[key] = loop.call_later(requeue, lambda: self.spawn(self.trigger(namespace, name)))

    def relist(self, metadata_only: bool = False) -> None:
        if isinstance(self.kube, CachedKube):
            self.kube.relist(self.namespaces, metadata_only)
            release_freed_memory()

    async def resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync_s)
            try:
                await asyncio.get_running_loop().run_in_executor(self.pool, self.relist, True)
                items = self.kube.list(API, PLURAL, None)
            except Exception:
                log.exception("resync list failed")
                continue
            for item in items:
                meta = item["metadata"]
                if not self.fresh((meta["namespace"], meta["name"])):
                    self.spawn(self.trigger_background(meta["namespace"], meta["name"]))

    def stop(self) -> None:
        """Drop queued reconciles and timers: one idempotent reconcile can stop anywhere, and
        the next operator redoes what was queued (the exit must not wait for hundreds)."""
        for timer in self.timers.values():
            timer.cancel()
        for task in list(self.tasks):  # the resync among them: it must not submit to a closed pool
            task.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.events.shutdown(wait=False, cancel_futures=True)


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf builds a diff base of every event's object (a deep copy of all of it) for on.create /
    on.update / on.field handlers. The operator has only on.event handlers, which never read it:
    at thousands of pod events the copies cost more CPU than the reconciles."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def finished(status: dict[str, Any], type: str | None, **_: Any) -> bool:
    """Only workload events that can change a decision: a pod or workload reaching an end, or
    disappearing. Creations and progress updates are ignored (the resync covers anything missed)."""
    if type == "DELETED" or status.get("phase") in ("Succeeded", "Failed"):
        return True
    return any(
        c.get("status") == "True" and c.get("type") in ("Complete", "Succeeded", "Failed")
        for c in status.get("conditions") or []
    )


def register(op: Operator, registry: kopf.OperatorRegistry) -> None:
    """Attach the handlers to a kopf registry (one per operator instance, so tests can run several)."""

    def cache(kind: Kind, event: dict[str, Any]) -> None:
        if isinstance(op.kube, CachedKube):
            op.kube.observe_event(kind, event.get("type"), event["object"])

    async def on_training(
        name: str, namespace: str, type: str | None, event: dict[str, Any], **_: Any
    ) -> None:
        cache(TRAININGS, event)
        if type != "DELETED":
            op.spawn(op.trigger(namespace, name))
        else:
            obs.forget(f"{namespace}/{name}")
            op.reconciled_at.pop((namespace, name), None)

    def on_workload_of(kind: Kind, training_of: TrainingOf) -> Any:
        async def on_workload(
            labels: dict[str, str], namespace: str, status: dict[str, Any], type: str | None,
            event: dict[str, Any], **_: Any,
        ) -> None:  # fmt: skip
            cache(kind, event)
            if finished(status, type) and (training := await training_of(namespace, labels)):
                op.spawn(op.trigger(namespace, training))

        return on_workload

    async def labelled(namespace: str, labels: dict[str, str]) -> str | None:
        return labels[LABEL_TRAINING]

    def via_workload(adapter: WorkloadAdapter, label: str) -> TrainingOf:
        """A pod without moa's labels (a TrainJob's) is cached so that its workload's reconcile
        reads its result; it belongs to the training of the workload its LABEL names."""

        async def training_of(namespace: str, labels: dict[str, str]) -> str | None:
            args = (adapter.api_version, adapter.plural, namespace, labels[label])
            workload = await asyncio.get_running_loop().run_in_executor(op.pool, op.kube.get, *args)
            return ((workload or {}).get("metadata", {}).get("labels") or {}).get(LABEL_TRAINING)

        return training_of

    async def on_adapter(
        name: str, namespace: str, type: str | None, event: dict[str, Any], **_: Any
    ) -> None:
        cache(ADAPTER_RESOURCES, event)
        if type != "DELETED":
            await asyncio.get_running_loop().run_in_executor(op.pool, op.reconcile_adapters, namespace, name)

    kopf.on.event("moa.dev", "v1alpha1", "adaptertrainings", registry=registry)(on_training)
    kopf.on.event("moa.dev", "v1alpha1", "adapters", registry=registry)(on_adapter)
    for kind in WATCHED[2:]:
        group, _, version = kind[0].rpartition("/")
        kopf.on.event(group, version, kind[1], labels={LABEL_TRAINING: kopf.PRESENT}, registry=registry)(
            on_workload_of(kind, labelled)
        )
    for adapter in ADAPTERS.values():
        if adapter.pod_label:
            kopf.on.event("", "v1", "pods", labels={adapter.pod_label: kopf.PRESENT}, registry=registry)(
                on_workload_of(PODS, via_workload(adapter, adapter.pod_label))
            )

    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.peering.standalone = True
        settings.posting.enabled = False  # our own Events carry the transitions
        settings.watching.server_timeout = 300
        settings.persistence.diffbase_storage = NoDiffBase()
        # Memory at 200 trainings: kopf's own lists (at start, after a 410) in pages, as the
        # cache's relists; and a per-object worker, which keeps its object's last event (a
        # decoded pod is ~40 KB) while it idles, exits after 0.5 s instead of 5 (thousands of
        # pods finish within any 5 s at that scale).
        settings.watching.chunk_size = RELIST_PAGE
        settings.queueing.idle_timeout = 0.5
        # Fill the cache before the first reconcile (kopf starts watching after startup
        # handlers): a reconcile on a half-filled cache would show a regressed status.
        await asyncio.get_running_loop().run_in_executor(op.pool, op.relist)
        op.spawn(op.resync())

    async def cleanup(**_: Any) -> None:
        op.stop()

    kopf.on.startup(registry=registry)(startup)
    kopf.on.cleanup(registry=registry)(cleanup)
    # A private registry has none of kopf's default login handlers: log in as the client does.
    kopf.on.login(registry=registry)(kopf.login_via_client)


def tune_malloc() -> None:
    """glibc malloc settings for a process that decodes large API answers in many threads (call
    before any thread starts; elsewhere than glibc: nothing).

    - Two arenas, as MALLOC_ARENA_MAX=2 would set: glibc gives threads that allocate at once
      arenas of their own, up to 8 per core, each keeping what its thread freed (at 200
      trainings 15 arenas held 46 MB of a 228 MB peak).
    - A fixed mmap threshold of 128 KiB: glibc otherwise raises it to the largest block freed
      (up to 32 MiB), after which every large answer's buffer comes from the heap and the heap
      keeps the hole it leaves."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(-8, 2)  # M_ARENA_MAX, from malloc.h
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD


def release_freed_memory() -> None:
    """Give the pages malloc holds free back to the system (malloc_trim): after a relist, what
    its answers occupied stays resident otherwise, and the next peak stacks on top of it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def run(
    namespaces: list[str],
    kubeconfig: str | None,
    resync_s: float,
    liveness_port: int | None,
    metrics_port: int | None,
) -> None:
    from prometheus_client import start_http_server

    tune_malloc()
    heap_profile.start_from_env()
    if metrics_port:
        start_http_server(metrics_port)
    if logging.getLogger().level > logging.DEBUG:
        # kopf logs each handler run at INFO ("Handler ... succeeded"): a line per pod event, tens
        # of thousands at 200 trainings. Reconcile logs its own transitions; kopf's handler
        # failures are warnings and errors and stay visible.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kube = informer_cache(load_client(kubeconfig, connections=WORKERS + EVENT_THREADS + 2))  # + relists
    op = Operator(kube, resync_s=resync_s, namespaces=namespaces)
    registry = kopf.OperatorRegistry()
    register(op, registry)
    asyncio.run(
        kopf.operator(
            registry=registry,
            standalone=True,
            namespaces=namespaces,
            clusterwide=not namespaces,
            liveness_endpoint=f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None,
        )
    )
