"""The Adapter controller: moves `status.stage` toward the desired `spec.stage` (set by GitOps)
following moa.pipeline.promotion, the policy the local registry uses too. It only writes status:
Git owns every spec, so a second production adapter of a language stays PromotionBlocked until
the first is retired in Git; then the blocked ones are reconciled again.
"""

from __future__ import annotations

from moa.api.adapter import PROMOTION_BLOCKED, Adapter
from moa.operator.kube import Kube
from moa.operator.reconcile import API
from moa.pipeline import promotion

PLURAL = "adapters"


def reconcile(kube: Kube, namespace: str, name: str) -> list[str]:
    """Reconcile one Adapter; returns the adapters to reconcile next (those it no longer blocks)."""
    obj = kube.get(API, PLURAL, namespace, name)
    if obj is None:
        return []
    adapter = Adapter.model_validate(obj)
    old = adapter.status
    generation = adapter.metadata.generation
    if old is not None and old.stage == adapter.spec.stage and old.observed_generation == generation:
        return []
    others = [Adapter.model_validate(o) for o in kube.list(API, PLURAL, namespace)]
    decision = promotion.decide(adapter, adapter.spec.stage, others)
    status = promotion.apply(adapter, decision).status
    assert status is not None
    status.observed_generation = generation
    kube.patch_status(API, PLURAL, namespace, name, status.to_yaml_dict())
    if old is None or old.stage != "production" or decision.stage == "production":
        return []
    return [
        o.metadata.name for o in others if o.spec.language == adapter.spec.language and blocked_by_rival(o)
    ]


def blocked_by_rival(adapter: Adapter) -> bool:
    conds = adapter.status.conditions if adapter.status else []
    return any(
        c.type == PROMOTION_BLOCKED and c.status == "True" and c.reason == "AnotherProduction" for c in conds
    )
