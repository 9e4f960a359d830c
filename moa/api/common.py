"""Pieces shared by both resources: the camelCase base model, conditions, object references.

Models are snake_case in Python and camelCase in YAML (the Kubernetes convention), so every
model derives from `Model`. Unknown fields are refused (`extra="forbid"`) because a typo in a
spec must be an error, not a silently ignored setting -- the API server prunes them too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP: Final = "moa.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = "moa.dev/v1alpha1"

# A DNS-1123 label: what Kubernetes accepts as a name segment, and what we accept as a language
# (languages are validated against registered plugins by the operator, so a new language needs no
# CRD change).
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# A DNS-1123 subdomain: an object name (AdapterTraining names in `after`, secret names).
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# A Kubernetes resource quantity ("200Gi", "500m", "8").
QUANTITY = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"

Name = Annotated[str, Field(pattern=DNS_SUBDOMAIN, min_length=1, max_length=253)]
Quantity = Annotated[str, Field(pattern=QUANTITY, max_length=64)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]

ConditionStatus = Literal["True", "False", "Unknown"]


class Model(BaseModel):
    """Base of every resource model: camelCase aliases, strict about unknown fields."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
        allow_inf_nan=False,  # as the API server: JSON has no NaN or Infinity
    )

    def to_yaml_dict(self) -> dict[str, Any]:
        """The object as Kubernetes YAML would show it: camelCase, JSON types, unset optionals omitted."""
        return self.model_dump(by_alias=True, mode="json", exclude_none=True)


def now() -> datetime:
    """The current time, second precision (what a Kubernetes metav1.Time keeps)."""
    return datetime.now(UTC).replace(microsecond=0)


class Condition(Model):
    """A standard Kubernetes condition (metav1.Condition), as kstatus and `kubectl wait` read it."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    status: ConditionStatus
    reason: str = Field(default="", max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: datetime | None = None
    observed_generation: int | None = Field(default=None, ge=0)


class ObjectRef(Model):
    """A reference to a Kubernetes object by kind and name (same namespace)."""

    kind: str = Field(max_length=63)
    name: Name


class SecretKeyRef(Model):
    """One key of a Secret in the same namespace (an API key for a teacher model)."""

    name: Name
    key: str = Field(default="api-key", max_length=253)


class ObjectMeta(BaseModel):
    """The part of Kubernetes object metadata moa reads; anything else is kept as-is."""

    model_config = ConfigDict(populate_by_name=True, alias_generator=to_camel, extra="allow")

    name: str = ""
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None


def set_condition(
    conditions: list[Condition],
    type: str,
    status: ConditionStatus,
    reason: str,
    message: str = "",
    observed_generation: int | None = None,
) -> list[Condition]:
    """Return `conditions` with `type` set; lastTransitionTime changes only when status changes."""
    old = next((c for c in conditions if c.type == type), None)
    new = Condition(
        type=type,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=now() if old is None or old.status != status else old.last_transition_time,
        observed_generation=observed_generation,
    )
    if old is None:
        return [*conditions, new]
    return [new if c.type == type else c for c in conditions]
