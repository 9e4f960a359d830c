"""The one promotion policy, used by the local registry and by the Adapter controller.

`decide` answers what stage an adapter actually reaches when its desired stage is TO:
- production needs the eval targets and regression limits to hold (its recorded gates);
- production needs no other adapter of the same language to be production. With GitOps, Git is
  the truth: nobody but the person editing Git retires the old production adapter, so a second
  one stays PromotionBlocked (reason AnotherProduction) until the first is retired. The local
  registry's `promote` is that person's one action: it retires the rival, then promotes.
Other stages are always reachable. `apply` writes a decision into the adapter's status only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from moa.api.adapter import PROMOTED, PROMOTION_BLOCKED, Adapter, AdapterStage, AdapterStatus
from moa.api.common import set_condition

BlockedReason = Literal["TargetsNotMet", "AnotherProduction"]


@dataclass(frozen=True)
class Decision:
    stage: AdapterStage  # the actual stage the adapter is at after this decision
    blocked: BlockedReason | None = None
    message: str = ""


def unmet_targets(adapter: Adapter) -> list[str]:
    """The eval targets and regression limits that failed (or why none were recorded)."""
    status = adapter.status or AdapterStatus()
    if not status.gates:
        return ["no eval results recorded: run `moa eval` before promoting"]
    return [g.describe() for g in status.gates if not g.passed]


def production_rivals(adapter: Adapter, others: Iterable[Adapter]) -> list[Adapter]:
    """Other adapters of the same language that are production and still meant to be."""
    return [
        o
        for o in others
        if o.metadata.name != adapter.metadata.name
        and o.spec.language == adapter.spec.language
        and o.spec.stage == "production"
        and (o.status.stage if o.status else None) == "production"
    ]


def decide(adapter: Adapter, to: AdapterStage, others: Iterable[Adapter]) -> Decision:
    current: AdapterStage = (adapter.status.stage if adapter.status else None) or "trained"
    if to != "production":
        return Decision(to)
    unmet = unmet_targets(adapter)
    if unmet:
        return Decision(current, "TargetsNotMet", "; ".join(unmet))
    rivals = [r.metadata.name for r in production_rivals(adapter, others)]
    if rivals:
        msg = (
            f"{', '.join(rivals)} is production for {adapter.spec.language}: "
            "retire it first (one production adapter per language)"
        )
        return Decision(current, "AnotherProduction", msg)
    return Decision("production")


def apply(adapter: Adapter, decision: Decision) -> Adapter:
    """ADAPTER with the decision in its status (stage and the Promoted / PromotionBlocked conditions)."""
    status = (adapter.status or AdapterStatus()).model_copy(deep=True)
    conds = status.conditions
    if decision.blocked:
        conds = set_condition(conds, PROMOTION_BLOCKED, "True", decision.blocked, decision.message)
        conds = set_condition(conds, PROMOTED, "False", decision.blocked, decision.message)
    else:
        conds = set_condition(conds, PROMOTION_BLOCKED, "False", "TargetsMet", "")
        promoted = "True" if decision.stage == "production" else "False"
        conds = set_condition(conds, PROMOTED, promoted, "Stage", f"stage {decision.stage}")
    status.stage, status.conditions = decision.stage, conds
    return adapter.model_copy(update={"status": status})
