"""`Adapter`: one trained adapter, the registry entry.

The AdapterTraining creates it at stage `trained` with the eval metrics in status; GitOps edits
`spec.stage` to promote it. The operator moves `status.stage` only when the eval targets and
regression limits hold (condition `Promoted`), otherwise sets `PromotionBlocked` naming the
failing target. The serving router serves `production` adapters only, one per language.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from moa.api.common import API_VERSION, DNS_LABEL, Condition, Model, Name, ObjectMeta
from moa.api.gates import GateResult

KIND: Final = "Adapter"
PLURAL = "adapters"

AdapterStage = Literal["trained", "evaluating", "production", "retired"]

PROMOTED = "Promoted"
PROMOTION_BLOCKED = "PromotionBlocked"


class AdapterSpec(Model):
    language: str = Field(pattern=DNS_LABEL, max_length=63)
    base_model: str = Field(min_length=1, max_length=1024)
    artifact: str = Field(
        min_length=1, max_length=2048, description="Adapter folder: a path under the artifact root, or a URI."
    )
    stage: AdapterStage = Field(default="trained", description="Desired stage (edited by GitOps).")
    training: Name | None = Field(default=None, description="The AdapterTraining that produced it.")


class AdapterStatus(Model):
    observed_generation: int | None = Field(default=None, ge=0)
    stage: AdapterStage | None = Field(default=None, description="Actual stage.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Eval metrics, incl. drops vs base.")
    gates: list[GateResult] = Field(default_factory=list, max_length=64, description="Eval targets checked.")
    conditions: list[Condition] = Field(default_factory=list, max_length=64)


class Adapter(Model):
    api_version: Literal["moa.dev/v1alpha1"] = API_VERSION
    kind: Literal["Adapter"] = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: AdapterSpec
    status: AdapterStatus | None = None
