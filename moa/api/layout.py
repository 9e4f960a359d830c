"""The artifact tree under one root (a local folder, or a PVC mounted at the same path).

Every stage, the local runner and the operator compute paths here and nowhere else, so a
stage's output folder (and its metrics.json) is found the same way by whoever reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from moa.api.records import SourceRef

METRICS = "metrics.json"


@dataclass(frozen=True)
class Layout:
    root: Path
    language: str

    def __init__(self, root: str | Path, language: str) -> None:
        object.__setattr__(self, "root", Path(root))
        object.__setattr__(self, "language", language)

    # data/{lang}/...
    @property
    def data(self) -> Path:
        return self.root / "data" / self.language

    @property
    def mutations(self) -> Path:
        return self.data / "mutations"

    def mutations_of(self, source: SourceRef | str) -> Path:
        """data/{lang}/mutations/{repo}/ for one source."""
        ref = source if isinstance(source, SourceRef) else SourceRef.parse(source)
        return self.mutations / ref.slug

    @property
    def core_agent(self) -> Path:
        return self.data / "core_agent"

    @property
    def core_agent_train(self) -> Path:
        return self.core_agent / "train"

    @property
    def core_agent_eval(self) -> Path:
        return self.core_agent / "eval"

    @property
    def ipo(self) -> Path:
        return self.data / "ipo"

    @property
    def ipo_train(self) -> Path:
        return self.ipo / "train"

    @property
    def grpo_tasks(self) -> Path:
        return self.data / "grpo" / "tasks"

    # checkpoints/...
    @property
    def base_checkpoint(self) -> Path:
        return self.root / "checkpoints" / "coding_tui" / "final_merged"

    def base_model(self, base_model: str) -> Path:
        """A spec's baseModel: absolute as given, relative to the root otherwise."""
        return self.artifact(base_model)

    def artifact(self, path: str) -> Path:
        """A file a spec names on the artifact store (baseModel, eval.mmluData): absolute as
        given, relative to the root otherwise."""
        resolved = Path(path)
        return resolved if resolved.is_absolute() else self.root / resolved

    def adapter(self, suffix: str) -> Path:
        """checkpoints/adapters/{lang}_{suffix}: core_agent, ipo, grpo, coding (the final one)."""
        return self.root / "checkpoints" / "adapters" / f"{self.language}_{suffix}"

    @property
    def sft_adapter(self) -> Path:
        return self.adapter("core_agent")

    @property
    def ipo_adapter(self) -> Path:
        return self.adapter("ipo")

    @property
    def grpo_adapter(self) -> Path:
        return self.adapter("grpo")

    @property
    def final_adapter(self) -> Path:
        return self.adapter("coding")

    # reports/{lang}/
    @property
    def reports(self) -> Path:
        return self.root / "reports" / self.language

    def stage_dir(self, stage: str, shard: str | None = None) -> Path:
        """The folder a stage owns; its metrics.json is written there last.

        `mutate` is fanned out per source, so its folder is per shard (the source).
        """
        dirs = {
            "trajectories": self.core_agent,
            "datagate": self.reports / "datagate",
            "sft": self.sft_adapter,
            "preferences": self.ipo,
            "ipo": self.ipo_adapter,
            "grpo": self.grpo_adapter,
            "merge": self.final_adapter,
            "eval": self.reports / "eval",
        }
        if stage == "mutate":
            if shard is None:
                raise ValueError("stage mutate is per source: pass shard=<source>")
            return self.mutations_of(shard)
        if stage not in dirs:
            raise ValueError(f"unknown stage {stage!r}; expected mutate or one of {sorted(dirs)}")
        return dirs[stage]

    def metrics(self, stage: str, shard: str | None = None) -> Path:
        return self.stage_dir(stage, shard) / METRICS
