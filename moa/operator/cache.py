"""The watch streams' view of what reconcile reads: an informer cache in front of the API.

kopf already watches AdapterTrainings, Adapters and every workload kind and pod the operator
labels; each event lands here before it triggers anything, so a reconcile reads trainings,
workloads and pods from memory instead of a GET and a LIST per kind (an idle reconcile makes no
API request at all). Writes go to the API server and their answers are written through, so the
next reconcile sees its own creations and status without waiting for the watch.

A stale read is harmless by construction: workload names are deterministic, so planning a launch
that already exists ends in 409 Conflict (no duplicate), and the next event corrects the view. A
periodic relist (one LIST per kind, not per training) drops objects whose deletion no watch
delivered, as client-go's informers resync. Objects are trimmed to what reconcile reads
(metadata; the spec and whole status only for trainings and adapters, of workloads and pods how
they ended) to keep memory flat at scale.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from moa.operator.kube import Kube, path, plural_of

Kind = tuple[str, str]  # (apiVersion, plural)
RELIST_PAGE = 500  # objects per LIST page, client-go's reflector's default
_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
_META = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
         "labels", "annotations", "ownerReferences")  # fmt: skip


def trim(obj: dict[str, Any], keep_spec: bool) -> dict[str, Any]:
    """What reconcile reads of OBJ: identity and metadata; for the operator's own resources
    (KEEP_SPEC: trainings, adapters) their spec and whole status, for workloads and pods only
    the status fields their observe() reads."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    out: dict[str, Any] = {k: obj[k] for k in ("apiVersion", "kind") if obj.get(k)}
    out["metadata"] = {k: meta[k] for k in _META if k in meta}
    out["status"] = status if keep_spec else outcome_status(status)
    if keep_spec:
        out["spec"] = obj.get("spec") or {}
    return out


def outcome_status(status: dict[str, Any]) -> dict[str, Any]:
    """A workload's or pod's status cut to what says how it ended: phase, reason and message,
    the conditions without their timestamps, and each container's terminated state. A pod's
    full status (conditions with probe times, IPs, image ids, every container state) is three
    quarters of what the cache held per pod, thousands of pods at 200 trainings."""
    out: dict[str, Any] = {k: status[k] for k in ("phase", "reason", "message") if k in status}
    if status.get("conditions"):
        out["conditions"] = [
            {k: c[k] for k in ("type", "status", "reason", "message") if k in c} for c in status["conditions"]
        ]
    if status.get("containerStatuses"):
        out["containerStatuses"] = [
            {
                "name": c.get("name"),
                "state": {k: v for k, v in (c.get("state") or {}).items() if k == "terminated"},
            }
            for c in status["containerStatuses"]
        ]
    return out


def _version(obj: dict[str, Any]) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except ValueError:  # resourceVersion is opaque by contract; etcd's are integers
        return 0


def matches(obj: dict[str, Any], selector: str | None) -> bool:
    """Equality-based label selectors only (`a=b,c=d`): all the operator uses."""
    if not selector:
        return True
    labels = obj["metadata"].get("labels") or {}
    for term in selector.split(","):
        key, sep, value = term.partition("=")
        if not sep or key.endswith("!"):
            raise ValueError(f"unsupported label selector {selector!r}: only key=value terms")
        if labels.get(key) != value:
            return False
    return True


def _term(selector: str | None, key: str | None) -> str | None:
    """The value SELECTOR requires of label KEY (None when it does not name KEY)."""
    for term in (selector or "").split(","):
        name, sep, value = term.partition("=")
        if sep and key and name == key:
            return value
    return None


class CachedKube(Kube):
    """A Kube whose reads of the watched kinds come from the watch streams (see the module doc)."""

    def __init__(
        self,
        api: client.ApiClient,
        kinds: Iterable[Kind],
        with_spec: Iterable[Kind],
        index_label: str | None = None,
    ) -> None:
        super().__init__(api)
        self.kinds = set(kinds)
        self.with_spec = set(with_spec)
        self.index_label = index_label
        self._objects: dict[Kind, dict[tuple[str, str], dict[str, Any]]] = {k: {} for k in self.kinds}
        # (namespace, value of index_label) -> name -> object: a reconcile lists one training's
        # pods and workloads, which must not cost a scan of every training's (O(n) per reconcile
        # is O(n^2) per resync at 200 trainings).
        self._indexed: dict[Kind, dict[tuple[str, str], dict[str, dict[str, Any]]]] = {
            k: {} for k in self.kinds
        }
        self._lock = threading.Lock()

    def _bucket(self, obj: dict[str, Any]) -> tuple[str, str] | None:
        value = (obj["metadata"].get("labels") or {}).get(self.index_label or "")
        return None if value is None else (obj["metadata"].get("namespace") or "", value)

    def _store(self, kind: Kind, key: tuple[str, str], obj: dict[str, Any] | None) -> None:
        """Put OBJ under KEY (None: remove it), in the index too. Caller holds the lock."""
        old = self._objects[kind].pop(key, None)
        index = self._indexed[kind]
        if old is not None and (bucket := self._bucket(old)) is not None:
            index[bucket].pop(key[1], None)
            if not index[bucket]:
                del index[bucket]
        if obj is None:
            return
        self._objects[kind][key] = obj
        if (bucket := self._bucket(obj)) is not None:
            index.setdefault(bucket, {})[key[1]] = obj

    # -- fed by the watch streams (kopf events) and by relists ----------------------------------
    def observe_event(self, kind: Kind, event_type: str | None, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        key = (meta.get("namespace") or "", meta["name"])
        with self._lock:
            if event_type == "DELETED":
                self._store(kind, key, None)
                return
            cached = self._objects[kind].get(key)
            if cached is None or _version(body) >= _version(cached):
                self._store(kind, key, trim(body, kind in self.with_spec))

    def relist(self, namespaces: list[str], metadata_only: bool = False) -> None:
        """LIST every watched kind; objects the lists no longer hold, and that did not change
        after the list was taken, are gone (their DELETED event was missed).

        METADATA_ONLY lists names and versions (PartialObjectMetadataList) and only prunes: what
        the periodic relist is for. A changed object cannot be missed the way a deletion can (a
        watch that reconnects lists it again), and full lists of thousands of pods every resync
        cost the API server, the JSON decoder and the operator's peak memory far more."""
        for kind in sorted(self.kinds):
            for namespace in namespaces or [None]:
                try:
                    listed_at, seen = self._list_pages(kind, namespace, metadata_only)
                except ApiException as exc:
                    if exc.status == 404:  # the kind is not installed (e.g. no Kubeflow CRDs)
                        continue
                    raise
                with self._lock:
                    objects = self._objects[kind]
                    for key in [k for k in objects if namespace in (None, k[0]) and k not in seen]:
                        if _version(objects[key]) <= listed_at:
                            self._store(kind, key, None)

    def _list_pages(
        self, kind: Kind, namespace: str | None, metadata_only: bool
    ) -> tuple[int, set[tuple[str, str]]]:
        """LIST KIND in pages of RELIST_PAGE, as client-go's reflector does: a page's JSON is
        decoded and dropped before the next one is read, instead of thousands of pods (with
        their managedFields) at once, which set the operator's peak memory at 200 trainings.
        Returns the list's resourceVersion (one snapshot for all its pages) and the keys seen."""
        accept = _METADATA_LIST if metadata_only else "application/json"
        seen: set[tuple[str, str]] = set()
        query = {"limit": str(RELIST_PAGE)}
        while True:
            answer = self.request("GET", path(kind[0], kind[1], namespace), query=query, accept=accept) or {}
            meta = answer.get("metadata") or {}
            for item in answer.get("items") or []:
                seen.add((item["metadata"].get("namespace") or "", item["metadata"]["name"]))
                if not metadata_only:  # list items carry no apiVersion / kind
                    item.setdefault("apiVersion", kind[0])
                    item.setdefault("kind", str(answer.get("kind", "")).removesuffix("List"))
                    self.observe_event(kind, None, item)
            if not meta.get("continue"):
                return int(meta.get("resourceVersion") or 0), seen
            query = {"limit": str(RELIST_PAGE), "continue": meta["continue"]}

    def size(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._objects.values())

    # -- reads -----------------------------------------------------------------------------------
    def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        kind = (api_version, plural)
        if kind not in self.kinds:
            return super().get(api_version, plural, namespace, name)
        with self._lock:
            return self._objects[kind].get((namespace or "", name))

    def list(
        self, api_version: str, plural: str, namespace: str | None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        kind = (api_version, plural)
        if kind not in self.kinds:
            return super().list(api_version, plural, namespace, label_selector)
        indexed = _term(label_selector, self.index_label) if namespace else None
        with self._lock:
            if indexed is not None:
                objects = list(self._indexed[kind].get((namespace or "", indexed), {}).values())
            else:
                objects = [o for (ns, _), o in self._objects[kind].items() if namespace in (None, ns)]
        return [o for o in objects if matches(o, label_selector)]

    # -- writes, with their answers written through ---------------------------------------------
    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        created = super().create(obj)
        kind = (obj["apiVersion"], plural_of(obj))
        if kind in self.kinds and created:
            self.observe_event(kind, "ADDED", created)
        return created

    def patch_status(
        self, api_version: str, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        answer = super().patch_status(api_version, plural, namespace, name, status)
        if (api_version, plural) in self.kinds and answer:
            self.observe_event((api_version, plural), "MODIFIED", answer)
        return answer
