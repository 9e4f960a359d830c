"""The adapters being served, following the registry without a restart.

Only `production` adapters are served (one per language, the registry's promotion policy
guarantees it), plus an `evaluating` adapter with a canary weight, which gets that share of
its language's traffic. A registry change is applied as: load the new adapter and check it
(same base model, digest, tensors, rank, a forward pass that differs from the base), then
flip the routing table in one assignment; an adapter that left the served set is removed
from routing first and unloaded once its in-flight requests have finished.

Sources: a local workdir (`registry/adapters/*.yaml`, as `moa run` writes them) or the
`adapter_registry.yaml` that `moa registry export` writes, polled; or the cluster's
`Adapter` resources, watched.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml

from moa.api.adapter import Adapter
from moa.serving.engine import AdapterCheckError, ArtifactInfo, Engine

log = logging.getLogger("moa.serving")

Variant = Literal["production", "canary"]


@dataclass(frozen=True)
class Wanted:
    """One adapter the registry says to serve."""

    name: str
    language: str
    variant: Variant
    weight: float  # the canary's traffic share (1.0 for production)
    artifact: Path
    digest: str | None
    base_model: str

    @property
    def identity(self) -> tuple[str, Path, str | None]:
        return (self.name, self.artifact, self.digest)


class Source(Protocol):
    description: str

    def wanted(self) -> list[Wanted]: ...


def served_from(adapters: list[Adapter], root: Path) -> list[Wanted]:
    """What to serve of a registry's adapters (status is the truth; spec is only desired)."""
    out = []
    for a in adapters:
        stage = a.status.stage if a.status is not None else None
        if stage == "production":
            variant: Variant | None = "production"
        elif stage == "evaluating" and a.spec.canary_weight > 0:
            variant = "canary"
        else:
            variant = None
        if variant is None:
            continue
        artifact = Path(a.spec.artifact)
        out.append(
            Wanted(
                name=str(a.metadata.name),
                language=a.spec.language,
                variant=variant,
                weight=1.0 if variant == "production" else a.spec.canary_weight,
                artifact=artifact if artifact.is_absolute() else root / artifact,
                digest=a.spec.digest,
                base_model=_resolve_model(a.spec.base_model, root),
            )
        )
    return out


class LocalSource:
    """A `moa run` workdir (`registry/adapters/*.yaml`) or an exported `adapter_registry.yaml`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"local registry {path}"

    def wanted(self) -> list[Wanted]:
        if self.path.is_file():
            return _from_export(yaml.safe_load(self.path.read_text()) or {}, self.path.parent)
        folder = self.path / "registry" / "adapters"
        adapters = []
        for file in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
            try:
                adapters.append(Adapter.model_validate(yaml.safe_load(file.read_text())))
            except Exception as exc:  # one bad file must not stop serving the others
                log.error("skipping %s: %s", file, exc)
        return served_from(adapters, self.path)


def _resolve_model(model: str, root: Path) -> str:
    """A base model named relative to the artifact root, as an absolute path; an id stays as is."""
    path = Path(model)
    return str((root / path).resolve()) if not path.is_absolute() and (root / path).exists() else model


def _from_export(doc: dict[str, Any], root: Path) -> list[Wanted]:
    out = []
    for language, entries in (doc.get("adapters") or {}).items():
        for e in entries:
            if e.get("stage") != "production":
                continue
            path = Path(e["path"])
            out.append(
                Wanted(
                    e["name"],
                    language,
                    "production",
                    1.0,
                    path if path.is_absolute() else root / path,
                    e.get("digest"),
                    _resolve_model(e["base_model"], root),
                )
            )
    return out


class NoRegistry:
    """No registry: only adapters loaded at run time (`--allow-runtime-lora`) are served."""

    description = "no registry (runtime adapters only)"

    def wanted(self) -> list[Wanted]:
        return []


class ClusterSource:
    """`Adapter` resources of a namespace, read through the Kubernetes API (read-only RBAC)."""

    def __init__(self, namespace: str, artifact_root: Path) -> None:
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        self.api = client.CustomObjectsApi()
        self.namespace, self.root = namespace, artifact_root
        self.description = f"Adapter resources in namespace {namespace}"

    def wanted(self) -> list[Wanted]:
        items = self.api.list_namespaced_custom_object("moa.dev", "v1alpha1", self.namespace, "adapters")[
            "items"
        ]
        return served_from([Adapter.model_validate(i) for i in items], self.root)


@dataclass
class Route:
    adapter: str
    language: str
    variant: Variant


@dataclass
class _Table:
    """The routing table, replaced as a whole on every change (one assignment: atomic)."""

    served: dict[str, Wanted] = field(default_factory=dict)
    production: dict[str, str] = field(default_factory=dict)  # language -> adapter
    canary: dict[str, tuple[str, float]] = field(default_factory=dict)  # language -> (adapter, weight)


class AdapterSet:
    def __init__(
        self,
        engine: Engine,
        source: Source,
        *,
        default_language: str | None = None,
        on_change: Callable[[AdapterSet], None] | None = None,
        grace_s: float = 5.0,
    ) -> None:
        self.engine, self.source = engine, source
        self.default_language = default_language
        self.on_change = on_change or (lambda s: None)
        self.table = _Table()
        self.infos: dict[str, ArtifactInfo] = {}
        self.refused: dict[str, str] = {}  # name -> why it is not served
        self._refused_as: dict[str, tuple[str, Path, str | None]] = {}  # not retried every poll
        self.created: dict[str, int] = {}
        self._inflight: Counter[str] = Counter()
        # A production adapter that left the registry with no successor yet keeps serving its
        # language for this long: `moa registry promote` retires, then promotes (two writes), and
        # a poll between them must not leave the language without an adapter.
        self.grace_s = grace_s
        self._leaving: dict[str, float] = {}
        self._lock = asyncio.Lock()  # one sync at a time

    # --- routing ---------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self.table.served)

    def language_of(self, name: str) -> str | None:
        wanted = self.table.served.get(name)
        return wanted.language if wanted else None

    def for_language(self, language: str, user: str | None) -> Route | None:
        table = self.table  # one read: a concurrent flip cannot mix two tables
        production = table.production.get(language)
        canary = table.canary.get(language)
        if canary is not None and (production is None or _bucket(user) < canary[1]):
            return Route(canary[0], language, "canary")
        return Route(production, language, "production") if production else None

    def default(self, user: str | None) -> Route | None:
        table = self.table
        languages = sorted(table.production)
        if self.default_language in table.production:
            languages.insert(0, str(self.default_language))
        return self.for_language(languages[0], user) if languages else None

    def variant_of(self, name: str) -> Variant | None:
        wanted = self.table.served.get(name)
        return wanted.variant if wanted else None

    def acquire(self, name: str) -> bool:
        """Count a request on `name` (False: it is no longer served)."""
        if name not in self.table.served:
            return False
        self._inflight[name] += 1
        return True

    def release(self, name: str) -> None:
        self._inflight[name] -= 1

    # --- following the registry ------------------------------------------------------

    async def sync(self) -> None:
        async with self._lock:
            try:
                wanted = {w.name: w for w in await asyncio.to_thread(self.source.wanted)}
            except Exception as exc:
                log.error("cannot read %s: %s", self.source.description, exc)
                return
            current = self.table.served
            added = [w for n, w in wanted.items() if n not in current or current[n].identity != w.identity]
            ready = dict(current)
            for w in added:
                if self._refused_as.get(w.name) == w.identity:
                    continue
                try:
                    self._check_base(w)
                    if w.name in current:  # a new artifact under the same name: replace it
                        await self._drain_and_unload(w.name)
                    self.infos[w.name] = await self.engine.load(w.name, w.artifact, w.digest)
                except (AdapterCheckError, OSError, ValueError) as exc:
                    self.refused[w.name], self._refused_as[w.name] = str(exc), w.identity
                    log.error("not serving %s: %s", w.name, exc)
                    ready.pop(w.name, None)
                    continue
                self.refused.pop(w.name, None)
                self._refused_as.pop(w.name, None)
                self.created[w.name] = int(time.time())
                ready[w.name] = w
            kept = {n: w for n, w in ready.items() if n in wanted}
            self._keep_until_replaced(current, kept, wanted)
            removed = [n for n in current if n not in kept]
            changed = kept.keys() != current.keys() or any(kept[n] is not current.get(n) for n in kept)
            if changed:
                self.table = _table(kept)  # the atomic flip
                log.info(
                    "serving %s",
                    ", ".join(f"{n} ({w.variant})" for n, w in sorted(kept.items())) or "nothing",
                )
            for name in removed:
                await self._drain_and_unload(name)
            if changed or removed:
                self.on_change(self)

    def _keep_until_replaced(
        self, current: dict[str, Wanted], kept: dict[str, Wanted], wanted: dict[str, Wanted]
    ) -> None:
        now = time.monotonic()
        for name, w in current.items():
            if name in kept or w.variant != "production":
                continue
            successor = any(k.language == w.language and k.variant == "production" for k in kept.values())
            until = self._leaving.setdefault(name, now + self.grace_s)
            if not successor and now < until:
                kept[name] = w
        self._leaving = {n: t for n, t in self._leaving.items() if n in kept and n not in wanted}

    def _check_base(self, w: Wanted) -> None:
        if not _same_model(w.base_model, self.engine.base):
            raise AdapterCheckError(
                f"{w.name} was trained on {w.base_model!r}, this server serves {self.engine.base!r}"
            )

    async def _drain_and_unload(self, name: str, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self._inflight[name] > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await self.engine.unload(name)
        self.infos.pop(name, None)
        self.created.pop(name, None)

    async def follow(self, interval_s: float) -> None:
        while True:
            await self.sync()
            await asyncio.sleep(interval_s)


def _table(served: dict[str, Wanted]) -> _Table:
    table = _Table(served=served)
    for w in sorted(served.values(), key=lambda w: w.name):
        if w.variant == "production":
            table.production[w.language] = w.name
        else:
            table.canary[w.language] = (w.name, w.weight)
    return table


def _bucket(user: str | None) -> float:
    """A number in [0, 1): the same for every request of one `user` (sticky canary)."""
    if not user:
        return random.random()
    return int.from_bytes(hashlib.sha256(user.encode()).digest()[:8], "big") / 2**64


def _same_model(recorded: str, served: str) -> bool:
    """Whether the registry's base model is the one served: the same folder, or the same id."""
    if recorded == served:
        return True
    a, b = Path(recorded), Path(served)
    return a.exists() and b.exists() and a.resolve() == b.resolve()
