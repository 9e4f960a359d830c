"""The adapter registry: `Adapter` resources, stored as YAML files for local runs.

Promotion follows moa.pipeline.promotion, the policy the Adapter controller uses too. Here the
YAML file is both what Git would hold (spec) and what the controller would write (status), and
`promote` is the user's one action: retire the language's production adapter, then promote.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from moa.api.adapter import Adapter, AdapterSpec, AdapterStage, AdapterStatus, Published, adapter_name
from moa.api.gates import GateResult
from moa.api.layout import Layout
from moa.api.training import AdapterTraining
from moa.pipeline import promotion


def adapter_for(
    training: AdapterTraining, metrics: dict[str, float], gates: list[GateResult], published: Published | None
) -> Adapter:
    """The Adapter a succeeded AdapterTraining produces: stage `trained`, the eval's metrics and
    gates, and the immutable copy the eval stage published (the final adapter folder, without a
    digest, only where the eval's result did not say: a pod whose termination message was lost)."""
    spec = training.spec
    artifact = Layout(".", spec.language).final_adapter.relative_to(".")
    return Adapter(
        metadata={
            "name": adapter_name(training.metadata.name, spec.language),
            "namespace": training.metadata.namespace,
            "labels": {"moa.dev/language": spec.language},
        },
        spec=AdapterSpec(
            language=spec.language,
            base_model=spec.base_model,
            artifact=published.artifact if published else str(artifact),
            digest=published.digest if published else None,
            stage="trained",
            training=training.metadata.name or None,
        ),
        status=AdapterStatus(stage="trained", metrics=metrics, gates=gates),
    )


class LocalRegistry:
    """Adapters of local runs under `{root}/registry/adapters/{name}.yaml`."""

    def __init__(self, root: str | Path) -> None:
        self.dir = Path(root) / "registry" / "adapters"

    def save(self, adapter: Adapter) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{adapter.metadata.name}.yaml"
        tmp = path.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump(adapter.to_yaml_dict(), sort_keys=False))
        tmp.replace(path)
        return path

    def list(self) -> list[Adapter]:
        if not self.dir.exists():
            return []
        return [
            Adapter.model_validate(yaml.safe_load(p.read_text())) for p in sorted(self.dir.glob("*.yaml"))
        ]

    def get(self, name: str) -> Adapter:
        path = self.dir / f"{name}.yaml"
        if not path.exists():
            known = ", ".join(a.metadata.name for a in self.list()) or "none"
            raise LookupError(f"no adapter {name!r} in {self.dir} (known: {known})")
        return Adapter.model_validate(yaml.safe_load(path.read_text()))

    def set_stage(self, adapter: Adapter, to: AdapterStage) -> tuple[Adapter, promotion.Decision]:
        """Desire TO (as a Git edit of spec.stage would) and apply the policy's decision."""
        desired = adapter.model_copy(update={"spec": adapter.spec.model_copy(update={"stage": to})})
        decision = promotion.decide(desired, to, self.list())
        adapter = promotion.apply(desired, decision)
        self.save(adapter)
        return adapter, decision

    def promote(self, name: str, to: AdapterStage) -> tuple[Adapter, list[str]]:
        """Move NAME to TO; for production, retire the language's production adapter first.
        Returns the adapter and the names it retired. Nothing changes when the targets failed."""
        adapter = self.get(name)
        if to == "production" and promotion.unmet_targets(adapter):
            decision = promotion.decide(adapter, to, [])
            return promotion.apply(adapter, decision), []
        retired = []
        if to == "production":
            for rival in promotion.production_rivals(adapter, self.list()):
                self.set_stage(rival, "retired")
                retired.append(rival.metadata.name)
        adapter, _ = self.set_stage(adapter, to)
        return adapter, retired


def export(adapters: Iterable[Adapter]) -> dict[str, Any]:
    """The roadmap's `adapter_registry.yaml`: per language, its adapters with stage and eval metrics."""
    by_language: dict[str, list[dict[str, Any]]] = {}
    for a in sorted(adapters, key=lambda a: (a.spec.language, a.metadata.name)):
        status = a.status or AdapterStatus()
        by_language.setdefault(a.spec.language, []).append(
            {
                "name": a.metadata.name,
                "base_model": a.spec.base_model,
                "path": a.spec.artifact,
                "digest": a.spec.digest,
                "stage": status.stage or a.spec.stage,
                "training": a.spec.training,
                "eval": dict(sorted(status.metrics.items())),
                "targets_met": bool(status.gates) and all(g.passed for g in status.gates),
            }
        )
    production = {
        lang: next((e["name"] for e in entries if e["stage"] == "production"), None)
        for lang, entries in by_language.items()
    }
    return {"version": 1, "production": production, "adapters": by_language}
