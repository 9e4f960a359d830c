"""`Adapter`: one trained adapter, the registry entry.

The AdapterTraining creates it at stage `trained` with the eval metrics in status; GitOps edits
`spec.stage` to promote it. The operator moves `status.stage` only when the eval targets and
regression limits hold (condition `Promoted`), otherwise sets `PromotionBlocked` naming the
failing target. The serving router serves `production` adapters only, one per language.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
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
    digest: str | None = Field(
        default=None,
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="Digest of the artifact's files (sha256:...); the server refuses an artifact that differs.",
    )
    canary_weight: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of its language's traffic this adapter gets as a canary while evaluating.",
    )


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


def artifact_digest(folder: str | Path) -> str:
    """`sha256:...` over an artifact folder's files (relative paths and bytes, in path order),
    so a copy anywhere has the same digest and any changed byte changes it."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"no adapter artifact at {root}")
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return "sha256:" + digest.hexdigest()


PUBLISHED = Path("checkpoints") / "adapters" / "published"


def adapter_name(training: str, language: str) -> str:
    """The Adapter an AdapterTraining produces is named after it (or its language)."""
    return f"{training or language}-coding"


class Published(Model):
    """An adapter's immutable, digest-named copy: what an Adapter points at and a server loads."""

    artifact: str = Field(min_length=1, description="Path under the artifact root.")
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")


def publish_artifact(root: str | Path, source: str | Path, name: str) -> Published:
    """Copy the adapter folder SOURCE to `checkpoints/adapters/published/{name}@{digest}` under ROOT.

    The final adapter folder of a language is rewritten by every retraining; its published copy
    is never written again (the same digest is the same bytes), so whatever serves it keeps
    serving what was evaluated. The copy is made under a temporary name and renamed, so a crash
    leaves no half-published folder under the final name."""
    root = Path(root)
    source = root / source
    digest = artifact_digest(source)
    target = PUBLISHED / f"{name}@{digest.removeprefix('sha256:')[:16]}"
    if not (root / target).exists():
        partial = root / target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(source, partial)
        partial.rename(root / target)
    return Published(artifact=str(target), digest=digest)
