"""The adapter registry: `Adapter` resources, stored as YAML files for local runs, and the
promotion rule shared with the operator.

Promotion to production is refused unless the adapter's eval targets and regression limits
held (its recorded gates); promoting one adapter retires the language's previous production
adapter, so there is at most one production adapter per language.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from moa.api.adapter import PROMOTED, PROMOTION_BLOCKED, Adapter, AdapterSpec, AdapterStage, AdapterStatus
from moa.api.common import set_condition
from moa.api.gates import GateResult
from moa.api.layout import Layout
from moa.api.training import AdapterTraining


def adapter_for(training: AdapterTraining, metrics: dict[str, float], gates: list[GateResult]) -> Adapter:
    """The Adapter a succeeded AdapterTraining produces (stage `trained`, eval metrics copied)."""
    spec = training.spec
    name = f"{training.metadata.name or spec.language}-coding"
    layout = Layout(".", spec.language)
    return Adapter(
        metadata={
            "name": name,
            "namespace": training.metadata.namespace,
            "labels": {"moa.dev/language": spec.language},
        },
        spec=AdapterSpec(
            language=spec.language,
            base_model=spec.base_model,
            artifact=str(layout.final_adapter.relative_to(".")),
            stage="trained",
            training=training.metadata.name or None,
        ),
        status=AdapterStatus(stage="trained", metrics=metrics, gates=gates),
    )


def promotion_blockers(adapter: Adapter, to: AdapterStage) -> list[str]:
    """Why `adapter` may not move to stage `to` (empty: allowed)."""
    if to != "production":
        return []
    status = adapter.status or AdapterStatus()
    if not status.gates:
        return ["no eval results recorded: run `moa eval` before promoting"]
    return [g.describe() for g in status.gates if not g.passed]


def apply_stage(
    adapter: Adapter, to: AdapterStage, others: Iterable[Adapter]
) -> tuple[Adapter, list[Adapter]]:
    """Move `adapter` to `to` if allowed; returns it and the adapters retired to make room."""
    status = adapter.status or AdapterStatus()
    blockers = promotion_blockers(adapter, to)
    if blockers:
        status.conditions = set_condition(
            status.conditions, PROMOTION_BLOCKED, "True", "TargetsNotMet", "; ".join(blockers)
        )
        status.conditions = set_condition(
            status.conditions, PROMOTED, "False", "TargetsNotMet", "; ".join(blockers)
        )
        adapter.status = status
        return adapter, []
    retired = []
    if to == "production":
        for other in others:
            same = (
                other.spec.language == adapter.spec.language and other.metadata.name != adapter.metadata.name
            )
            if same and other.status is not None and other.status.stage == "production":
                other.spec.stage = "retired"
                other.status.stage = "retired"
                retired.append(other)
    status.stage = to
    status.conditions = set_condition(status.conditions, PROMOTION_BLOCKED, "False", "TargetsMet", "")
    status.conditions = set_condition(
        status.conditions, PROMOTED, "True" if to == "production" else "False", "Stage", f"stage {to}"
    )
    adapter.spec.stage = to
    adapter.status = status
    return adapter, retired


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

    def promote(self, name: str, to: AdapterStage) -> Adapter:
        adapter, retired = apply_stage(self.get(name), to, self.list())
        for other in retired:
            self.save(other)
        self.save(adapter)
        return adapter


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
