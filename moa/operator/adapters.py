"""The Adapter controller: moves `status.stage` toward the desired `spec.stage` (set by GitOps),
refusing production unless the eval targets held and no other production adapter of the same
language remains. It only writes status: GitOps owns the spec.
"""

from __future__ import annotations

from moa.api.adapter import Adapter
from moa.api.common import set_condition
from moa.operator.kube import Kube
from moa.operator.reconcile import API
from moa.pipeline.registry import apply_stage


def reconcile(kube: Kube, namespace: str, name: str) -> None:
    obj = kube.get(API, "adapters", namespace, name)
    if obj is None:
        return
    adapter = Adapter.model_validate(obj)
    status = adapter.status
    if (
        status is not None
        and status.stage == adapter.spec.stage
        and status.observed_generation == adapter.metadata.generation
    ):
        return
    others = [
        Adapter.model_validate(o)
        for o in kube.list(API, "adapters", namespace)
        if o["metadata"]["name"] != name
    ]
    rivals = [
        o.metadata.name
        for o in others
        if o.spec.language == adapter.spec.language
        and o.spec.stage == "production"
        and (o.status and o.status.stage) == "production"
    ]
    desired = adapter.spec.stage
    adapter, _ = apply_stage(adapter, desired, [])
    assert adapter.status is not None
    if desired == "production" and rivals and adapter.status.stage == "production":
        msg = f"{', '.join(rivals)} is production for {adapter.spec.language}; retire it first (one per language)"
        adapter.status.stage = status.stage if status else "trained"
        adapter.status.conditions = set_condition(
            adapter.status.conditions, "PromotionBlocked", "True", "AnotherProduction", msg
        )
        adapter.status.conditions = set_condition(
            adapter.status.conditions, "Promoted", "False", "AnotherProduction", msg
        )
    adapter.status.observed_generation = adapter.metadata.generation
    kube.patch_status(API, "adapters", namespace, name, adapter.status.to_yaml_dict())
