"""The stage graph's vocabulary: stage names in order, the command of each, and the files that
pass between the orchestrator (operator or local runner) and a stage.

`StageConfig` is the one YAML every stage command takes with `--config`: the full
AdapterTraining spec (defaults applied) plus which stage, which artifact root and, for a
fanned-out stage, which shard. A stage reads its own section of `spec` from it.
`StageSummary` is what a stage leaves behind: metrics.json, and its compact form (< 4 KiB) in
/dev/termination-log, where the operator reads it from the pod status.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field

from moa.api import atomic, kube_yaml
from moa.api.adapter import Published
from moa.api.common import API_VERSION, Model
from moa.api.gates import GateResult
from moa.api.layout import Layout
from moa.api.training import AdapterTraining, AdapterTrainingSpec

StageName = Literal[
    "fetch", "mutate", "trajectories", "datagate", "sft", "preferences", "ipo", "grpo", "merge", "eval"
]

# Set by the operator on every stage pod: the pod is the sandbox (moa.languages.sandbox).
SANDBOX_POD_ENV = "MOA_SANDBOX_POD"

# Exit codes of the stage contract.
EXIT_OK = 0
EXIT_GATE_FAILED = 3


# What a stage's pod may reach: nothing; the package registries (fetch: downloads only, before
# anything untrusted runs); the teacher endpoint of the spec (none for the oracle teacher).
Network = Literal["none", "registries", "teacher"]


@dataclass(frozen=True)
class Ratio:
    """A metric that is NUMERATOR / DENOMINATOR of two count metrics of the same stage."""

    name: str
    numerator: str
    denominator: str


@dataclass(frozen=True)
class Stage:
    name: StageName
    command: tuple[str, ...]  # argv after `moa`, before `--config FILE`
    gpu: bool  # needs an accelerator (a training workload)
    sandboxed: bool  # executes untrusted code (mutants, model-written patches)
    fan_out: bool = False  # one run per source (shard)
    network: Network = "none"
    toolchain: bool = False  # runs the language's toolchain (its sandbox image) without being sandboxed
    # Across shards counts add up, ratios never do: a fanned-out stage's ratios are recomputed
    # from the summed counts, and its rates (per unit of one shard's time) are left out.
    ratios: tuple[Ratio, ...] = ()
    rates: frozenset[str] = frozenset()
    # The figures a person looks at first, in order (the run summary, `moa registry list`).
    headline: tuple[str, ...] = ()


STAGES: tuple[Stage, ...] = (
    Stage(
        "fetch",
        ("datagen", "fetch"),
        gpu=False,
        sandboxed=False,
        fan_out=True,
        network="registries",
        toolchain=True,
        headline=("sources_fetched", "sources_failed", "seconds"),
    ),
    Stage(
        "mutate",
        ("datagen", "mutate"),
        gpu=False,
        sandboxed=True,
        fan_out=True,
        ratios=(Ratio("yield", "caught", "total"),),
        rates=frozenset({"mutants_per_minute"}),
        headline=("caught", "yield", "sources", "mutants_per_minute"),
    ),
    Stage(
        "trajectories",
        ("datagen", "trajectories"),
        gpu=False,
        sandboxed=True,
        network="teacher",
        headline=("kept", "train", "eval", "mean_tool_calls"),
    ),
    Stage(
        "datagate",
        ("datagen", "gate"),
        gpu=False,
        sandboxed=False,
        headline=("caught_mutations", "multi_tool_fraction", "average_turns", "valid_harmony_fraction"),
    ),
    Stage(
        "sft",
        ("train", "sft"),
        gpu=True,
        sandboxed=False,
        headline=("tool_call_accuracy", "train_loss", "eval_loss", "steps"),
    ),
    Stage(
        "preferences",
        ("datagen", "preferences"),
        gpu=True,
        sandboxed=True,
        headline=("pairs", "informative_pairs", "tasks", "invalid_episode_share"),
    ),
    Stage(
        "ipo",
        ("train", "ipo"),
        gpu=True,
        sandboxed=False,
        headline=("chosen_over_rejected", "margin", "kl", "pairs"),
    ),
    Stage(
        "grpo",
        ("train", "grpo"),
        gpu=True,
        sandboxed=True,
        headline=("reward_mean_first", "reward_mean_last", "reward_max", "steps"),
    ),
    Stage("merge", ("merge",), gpu=True, sandboxed=False, headline=("adapter_parameters", "stages")),
    Stage(
        "eval",
        ("eval",),
        gpu=True,
        sandboxed=True,
        headline=("test_pass_rate", "tool_call_accuracy", "base_tool_call_accuracy", "compile_pass_rate"),
    ),
)
STAGE_NAMES: tuple[StageName, ...] = tuple(s.name for s in STAGES)
_BY_NAME = {s.name: s for s in STAGES}


def headline_metrics(name: str, metrics: dict[str, float], count: int = 4) -> dict[str, float]:
    """The stage's headline figures that were measured, in its order; a stage that names none
    (or measured none of them) shows its first `count` metrics."""
    named = {k: metrics[k] for k in stage(name).headline if k in metrics} if name in STAGE_NAMES else {}
    return named or dict(list(metrics.items())[:count])


def stage(name: str) -> Stage:
    if name not in _BY_NAME:
        raise ValueError(f"unknown stage {name!r}; expected one of {', '.join(STAGE_NAMES)}")
    return _BY_NAME[name]


class StageConfig(Model):
    """The `--config` file of every stage command."""

    api_version: Literal["moa.dev/v1alpha1"] = API_VERSION
    kind: Literal["StageConfig"] = "StageConfig"
    stage: StageName
    root: str = Field(min_length=1, description="The artifact root.")
    name: str = Field(min_length=1, description="The AdapterTraining's name.")
    spec: AdapterTrainingSpec
    shard: str | None = Field(default=None, description="For a fanned-out stage: its part, e.g. a source.")

    @classmethod
    def for_training(
        cls, training: AdapterTraining, stage: StageName, root: str | None = None, shard: str | None = None
    ) -> StageConfig:
        return cls(
            stage=stage,
            root=root or training.spec.storage.root,
            name=training.metadata.name,
            spec=training.spec,
            shard=shard,
        )

    @property
    def layout(self) -> Layout:
        return Layout(self.root, self.spec.language)

    @property
    def output_dir(self) -> Path:
        return self.layout.stage_dir(self.stage, self.shard)

    @classmethod
    def load(cls, path: str | Path) -> StageConfig:
        data = kube_yaml.load_file(path)
        if not isinstance(data, dict) or data.get("kind") != "StageConfig":
            raise ValueError(f"{path}: not a StageConfig (expected kind: StageConfig)")
        return cls.model_validate(data)

    def dump(self) -> str:
        return yaml.safe_dump(self.to_yaml_dict(), sort_keys=False)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.dump())
        return path


SummaryStatus = Literal["succeeded", "gate_failed", "failed"]
TERMINATION_LOG_LIMIT = 4096


class StageSummary(Model):
    """metrics.json of a stage; its compact JSON is the termination message on Kubernetes."""

    # Written by a stage image that may be a release newer than the operator reading it (an
    # upgrade rolls one before the other): a field the reader does not know is dropped, never a
    # reason to take a succeeded stage for a failed one. (A user's spec stays strict.)
    model_config = Model.model_config | {"extra": "ignore"}

    stage: StageName
    status: SummaryStatus
    metrics: dict[str, float] = Field(default_factory=dict)
    gates: list[GateResult] = Field(default_factory=list)
    message: str = ""
    published: Published | None = Field(
        default=None, description="eval: the immutable copy of the adapter it evaluated, for the Adapter."
    )

    @property
    def exit_code(self) -> int:
        return {"succeeded": EXIT_OK, "gate_failed": EXIT_GATE_FAILED, "failed": 1}[self.status]

    def to_json(self) -> str:
        return json.dumps(self.to_yaml_dict(), indent=2, sort_keys=True)

    def compact(self, limit: int = TERMINATION_LOG_LIMIT) -> str:
        """One-line JSON under `limit` bytes: failed gates are kept first, then metrics, then the message is cut."""
        data = self.to_yaml_dict()
        data["gates"] = sorted(data["gates"], key=lambda g: g["passed"])
        text = json.dumps(data, separators=(",", ":"))
        while len(text.encode()) > limit and (data["gates"] or data["metrics"] or data["message"]):
            if data["message"]:
                data["message"] = data["message"][: max(0, len(data["message"]) // 2 - 1)]
            elif data["metrics"]:
                data["metrics"].popitem()
            else:
                data["gates"].pop()
            text = json.dumps(data, separators=(",", ":"))
        return text

    def write_termination_log(self) -> bool:
        """In a pod, the compact summary goes to the termination log, where the operator reads it
        (`MOA_TERMINATION_LOG`, default /dev/termination-log); elsewhere there is none. True when written."""
        log = Path(os.environ.get("MOA_TERMINATION_LOG", "/dev/termination-log"))
        if not log.exists():
            return False
        try:
            log.write_text(self.compact())
        except OSError:
            return False
        return True

    @classmethod
    def read(cls, path: str | Path) -> StageSummary:
        return cls.model_validate_json(Path(path).read_text())

    def write(self, path: str | Path) -> Path:
        """Write atomically (temporary name, then rename): metrics.json marks a completed stage."""
        return atomic.write_text(Path(path), self.to_json())
