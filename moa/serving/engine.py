"""What the router needs from an engine, and the artifact checks every engine runs on load.

Two engines implement `Engine`: `inprocess` (the base model once in this process, PEFT
adapters by name) and `upstream` (an OpenAI-compatible server with LoRA enabled, e.g. vLLM).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from moa.api.adapter import artifact_digest


class AdapterCheckError(RuntimeError):
    """An artifact the server refuses to serve; the message says which check failed."""


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0


@dataclass(frozen=True)
class Piece:
    """Text generated since the last piece. The last piece of a generation has `done` set,
    `stopped` (ended on a stop token, not at the limit) and the token counts."""

    text: str
    done: bool = False
    stopped: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    adapter: str = ""  # the adapter that was active while this text was generated


@dataclass
class ArtifactInfo:
    """What the checks read from an adapter folder."""

    path: Path
    digest: str
    rank: int
    targets: list[str]
    tensors: int
    checks: list[str] = field(default_factory=list)  # the checks that passed, for logs and /v1/models


class Engine(Protocol):
    name: str  # "inprocess" | "upstream"
    base: str  # the base model served (a path or a model id)
    max_context: int

    def count_tokens(self, text: str) -> int: ...

    async def load(self, name: str, path: Path, digest: str | None) -> ArtifactInfo:
        """Load (and check) an adapter under `name`; raises AdapterCheckError."""

    async def unload(self, name: str) -> None: ...

    def loaded(self) -> list[str]:
        """The adapters the engine holds (to show that retirement really unloads)."""

    def generate(self, adapter: str, prompt: str, sampling: Sampling) -> AsyncIterator[Piece]: ...

    async def close(self) -> None: ...


def check_artifact(path: Path, digest: str | None) -> ArtifactInfo:
    """File-level checks: the folder is a PEFT LoRA adapter whose digest is the recorded one,
    whose tensors cover every target it declares, and whose rank is the recorded rank."""
    config_file, weights = path / "adapter_config.json", path / "adapter_model.safetensors"
    for needed in (config_file, weights):
        if not needed.is_file():
            raise AdapterCheckError(f"{path}: {needed.name} missing (not a PEFT adapter folder)")
    actual = artifact_digest(path)
    checks = []
    if digest is not None:
        if actual != digest:
            raise AdapterCheckError(
                f"{path}: digest {actual} differs from the recorded {digest} (the artifact changed after it was registered)"
            )
        checks.append("digest")
    config = json.loads(config_file.read_text())
    rank = int(config["r"])
    patterns = {str(k): int(v) for k, v in (config.get("rank_pattern") or {}).items()}
    modules = _as_list(config.get("target_modules"))
    parameters = _as_list(config.get("target_parameters"))
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as fh:
        shapes = {key: fh.get_slice(key).get_shape() for key in fh.keys()}  # noqa: SIM118 (not a dict)
    lora_a = [key for key in shapes if "lora_A" in key]
    missing = [t for t in modules if not any(_mentions(key, t) for key in lora_a)]
    # PEFT names a fused parameter's factors after its module (`mlp.experts.lora_A`, nested as
    # `mlp.experts.base_layer.lora_A` for a second parameter): count them per module instance.
    owners: dict[str, int] = {}
    for parameter in parameters:
        owners[parameter.rsplit(".", 1)[0]] = owners.get(parameter.rsplit(".", 1)[0], 0) + 1
    for owner, count in owners.items():
        keys = [key for key in lora_a if _mentions(key, owner)]
        instances = {key.split(f".{owner}.")[0] for key in keys}
        if not keys or len(keys) != count * len(instances):
            missing.append(f"{owner} ({count} parameters, {len(keys)} factors in {len(instances)} layers)")
    if missing:
        raise AdapterCheckError(f"{path}: no tensors for the declared targets {missing}")
    checks.append("tensors")
    for key in lora_a:
        rows = shapes[key][0] if shapes[key] else 0
        want = next((r for name, r in patterns.items() if _mentions(key, name)), rank)
        fused = any(_mentions(key, owner) for owner in owners)
        # A fused expert tensor stacks one factor per expert: a multiple of its rank.
        if rows == 0 or (rows % want if fused else rows != want):
            raise AdapterCheckError(f"{path}: {key} has rank {rows}, the adapter config records {want}")
    checks.append("rank")
    return ArtifactInfo(path, actual, rank, modules + parameters, len(shapes), checks)


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]  # type: ignore[attr-defined]


def _mentions(key: str, target: str) -> bool:
    """Whether tensor `key` belongs to target module/parameter `target` (a name or dotted suffix)."""
    return f".{target}." in f".{key}"
