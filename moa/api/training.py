"""`AdapterTraining`: one language's whole pipeline, as a Kubernetes resource.

Every hyper-parameter and gate has the roadmap's default here, so a minimal spec is just a
language; the generated CRD carries the same defaults (so `kubectl get -o yaml` shows the
effective spec) and the same cross-field rules as CEL (`x-kubernetes-validations`), which
`moa manifests validate` evaluates offline. Tests shrink thresholds in their own specs; no code
path differs between a test spec and a production one.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import Field, field_validator

from moa.api import kube_yaml
from moa.api.common import (
    API_VERSION,
    DNS_LABEL,
    Condition,
    Fraction,
    Model,
    Name,
    ObjectMeta,
    ObjectRef,
    Quantity,
    SecretKeyRef,
)
from moa.api.gates import GateResult, Op, Severity, check
from moa.api.records import SourceRef

KIND: Final = "AdapterTraining"
PLURAL = "adaptertrainings"

# CEL rules: K8s evaluates them where they are attached (`self` is that object); `moa manifests
# validate` evaluates the very same strings with cel-python. `fieldPath` points the message at
# the offending field. Rules on an object whose schema default is `{}` guard each field with
# `has()`: the API server checks that `{}` default against the rules *before* filling in the
# nested defaults (a real object always has them filled in when its rules run).
Rule = dict[str, str]


def _rules(*rules: Rule) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


# ----------------------------------------------------------------------------- model / LoRA


class LoraSpec(Model):
    """The one LoRA adapter carried through SFT -> IPO -> GRPO.

    GPT-OSS's MoE experts are fused parameters (`mlp.experts.gate_up_proj`, `down_proj`), not
    Linear modules, so they are adapted through PEFT's `target_parameters`, attention through
    `target_modules`.
    """

    r: int = Field(default=128, ge=1, le=1024)
    alpha: float = Field(default=256.0, description="LoRA alpha; must be > 0.")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    target_modules: list[Annotated[str, Field(max_length=128)]] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], min_length=1, max_length=64
    )
    target_parameters: list[Annotated[str, Field(max_length=128)]] = Field(
        default_factory=lambda: ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"], max_length=64
    )
    load_in_4bit: bool = Field(default=True, alias="loadIn4bit")
    max_seq_length: int = Field(default=32768, ge=128, le=262144)

    model_config = Model.model_config | {
        "json_schema_extra": _rules(
            {
                "rule": "!has(self.alpha) || self.alpha > 0.0",
                "message": "alpha must be > 0",
                "fieldPath": ".alpha",
            }
        )
    }


# ----------------------------------------------------------------------------- storage


class StorageSpec(Model):
    """Where the artifact tree lives: a PVC mounted at `root` in every pod (a folder locally)."""

    root: str = Field(
        default="/artifacts", max_length=1024, pattern=r"^/", description="Mount path of the artifact root."
    )
    claim_name: Name | None = Field(
        default=None, description="Existing PVC to use; unset: the operator creates `<name>-artifacts`."
    )
    size: Quantity = "500Gi"
    storage_class_name: Name | None = None


# ----------------------------------------------------------------------------- data


class Timeouts(Model):
    """Wall-clock limits (seconds) of the sandboxed runs during data generation."""

    build_seconds: int = Field(default=900, ge=1, le=86400)
    test_seconds: int = Field(default=300, ge=1, le=86400)
    source_seconds: int = Field(default=14400, ge=1, le=604800, description="Whole mutate run of one source.")


class DataLimits(Model):
    max_mutations_per_source: int = Field(default=500, ge=1, le=100000)
    concurrency: int = Field(
        default=8, ge=1, le=256, description="Mutation pods running at once (fan-out limit)."
    )
    jobs: int = Field(default=2, ge=1, le=64, description="Parallel test runs inside one mutation pod.")
    timeouts: Timeouts = Field(default_factory=Timeouts)


# The bug classes language plugins map their mutation tools' operators to (moa.languages.sampling).
BugClass = Literal[
    "comparison", "boundary", "arithmetic", "boolean", "variable", "call",
    "constant", "other", "sentinel", "block", "stub",
]  # fmt: skip


DEVELOPER_BUG_CLASSES: list[BugClass] = [
    "comparison",
    "boundary",
    "arithmetic",
    "boolean",
    "variable",
    "call",
]


class MutationSpec(Model):
    """Which mutants become data: the operator mix, the seed of the draw, the baseline floor."""

    operator_classes: list[Annotated[BugClass, Field(json_schema_extra={"maxLength": 16})]] = Field(
        default_factory=lambda: list(DEVELOPER_BUG_CLASSES),
        min_length=1,
        max_length=11,
        description="Bug classes to draw mutants from. The default holds the mistakes developers make; "
        "sentinel strings, block deletions and default-value stubs are left out.",
    )
    seed: int = Field(
        default=0, ge=0, description="Seed of the stratified draw over files, functions, classes."
    )
    min_green_tests: int = Field(
        default=5, ge=1, description="Tests that must stay green after deselecting the ones red at baseline."
    )


TeacherKind = Literal["oracle", "openai", "anthropic"]


class TeacherSpec(Model):
    """Who writes the agent trajectories. `oracle` replays the known fix through real tool calls
    (no model, no network); `openai`/`anthropic` call an API (OpenAI-compatible endpoints included)."""

    kind: TeacherKind = "oracle"
    endpoint: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    model: str | None = Field(default=None, max_length=256)
    secret_ref: SecretKeyRef | None = None

    model_config = Model.model_config | {
        "json_schema_extra": _rules(
            {
                "rule": "!has(self.kind) || self.kind == 'oracle' || has(self.model)",
                "message": "a model is required for an API teacher",
                "fieldPath": ".model",
            },
            {
                "rule": "!has(self.kind) || self.kind == 'oracle' || has(self.secretRef) || has(self.endpoint)",
                "message": "an API teacher needs secretRef (or a local endpoint)",
                "fieldPath": ".secretRef",
            },
        )
    }


class DataGates(Model):
    """The data gate between data generation and SFT."""

    min_caught_mutations: int = Field(default=3000, ge=0)
    min_multi_tool_fraction: Fraction = Field(default=0.8, description="Trajectories with 2+ tool calls.")
    max_duplicate_pairs: int = Field(default=0, ge=0, description="Duplicate (buggy, fixed) pairs allowed.")
    min_average_turns: float = Field(default=3.0, ge=0.0)
    min_valid_harmony_fraction: Fraction = 1.0
    max_eval_overlap: int = Field(
        default=0,
        ge=0,
        description="Train trajectories sharing a (package, file, function) or a diff with the eval split.",
    )

    # The quality of the mutation pairs themselves (measured over the caught records).
    min_named_test_fraction: Fraction = Field(
        default=0.9, description="Caught pairs naming a failing test (not just '(suite)')."
    )
    max_stub_operator_fraction: Fraction = Field(
        default=0.05,
        description="Caught pairs from sentinel strings, block deletions or default-value stubs.",
    )
    min_function_scoped_fraction: Fraction = Field(
        default=1.0, description="Caught pairs whose diff was checked to touch only their function."
    )
    max_timeout_pairs: int = Field(default=0, ge=0, description="Mutants that hung, kept as pairs.")
    # Every record moa reads was written by moa, so a malformed one means a bug or a damaged file,
    # not noise to train around: by default one fails the gate (like duplicates and eval overlap),
    # and a run that must go on despite a known-bad file says how many it tolerates.
    max_malformed_records: int = Field(
        default=0,
        ge=0,
        description="Malformed records a stage may leave out (each is listed in that stage's "
        "bad-records.txt): checked by the data gate (mutations, trajectories) and by SFT, IPO, "
        "GRPO and eval on what they read.",
    )

    def evaluate(self, metrics: dict[str, float]) -> list[GateResult]:
        """Metrics: caught_mutations, multi_tool_fraction, duplicate_pairs, average_turns,
        valid_harmony_fraction, eval_overlap; with caught pairs to measure, also named_test_fraction,
        stub_operator_fraction, function_scoped_fraction and timeout_pairs (left out, never
        passed, when there is no caught pair: the caught_mutations gate speaks for that)."""
        checks: list[tuple[str, Op, float]] = [
            ("caught_mutations", ">=", self.min_caught_mutations),
            ("multi_tool_fraction", ">=", self.min_multi_tool_fraction),
            ("duplicate_pairs", "<=", self.max_duplicate_pairs),
            ("average_turns", ">=", self.min_average_turns),
            ("valid_harmony_fraction", ">=", self.min_valid_harmony_fraction),
            ("eval_overlap", "<=", self.max_eval_overlap),
        ]
        if metrics.get("caught_mutations"):
            checks += [
                ("named_test_fraction", ">=", self.min_named_test_fraction),
                ("stub_operator_fraction", "<=", self.max_stub_operator_fraction),
                ("function_scoped_fraction", ">=", self.min_function_scoped_fraction),
                ("timeout_pairs", "<=", self.max_timeout_pairs),
            ]
        return _check_all("data", metrics, checks)


# REGISTRY:NAME@VERSION (npm scopes start with @), git:URL#REV, path:DIR -- as records.SourceRef parses.
Source = Annotated[
    # The registry is open (a plugin may add one); an unknown one is refused at fetch.
    str, Field(pattern=r"^([a-z][a-z0-9]*:@?[^@\s]+@[^@\s]+|git:\S+|path:\S+)$", max_length=512)
]


class DataSpec(Model):
    sources: list[Source] = Field(
        default_factory=list,
        max_length=1000,
        description="REGISTRY:NAME@VERSION (pypi, crates, npm, go), git:URL#REV or path:DIR. "
        "Empty: the language plugin's curated default sources.",
    )
    limits: DataLimits = Field(default_factory=DataLimits)
    mutation: MutationSpec = Field(default_factory=MutationSpec)
    teacher: TeacherSpec = Field(default_factory=TeacherSpec)
    eval_fraction: Fraction = Field(
        default=0.05, description="Share of trajectories held out for SFT eval loss."
    )
    grpo_fraction: Fraction = Field(
        default=0.1, description="Share of the training bugs kept aside as GRPO tasks (no trajectory)."
    )
    gates: DataGates = Field(default_factory=DataGates)

    @field_validator("sources")
    @classmethod
    def _parse_sources(cls, sources: list[str]) -> list[str]:
        for text in sources:
            SourceRef.parse(text)  # raises with the expected forms
        return sources

    def source_refs(self) -> list[SourceRef]:
        return [SourceRef.parse(s) for s in self.sources]


# ----------------------------------------------------------------------------- stages

Optimizer = Literal["adamw_8bit", "paged_adamw_8bit", "adamw_torch", "adamw_torch_fused"]
Scheduler = Literal["cosine", "linear", "constant", "constant_with_warmup"]


class Training(Model):
    """Hyper-parameters every training stage shares."""

    learning_rate: float = Field(default=3e-5, gt=0.0, le=1.0)
    batch_size: int = Field(default=1, ge=1, le=1024)
    gradient_accumulation: int = Field(default=4, ge=1, le=4096)
    optimizer: Optimizer = "adamw_8bit"
    lr_scheduler: Scheduler = "cosine"
    warmup_ratio: Fraction = 0.03
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    save_steps: int = Field(
        default=200, ge=1, description="Checkpoint interval; a restarted pod resumes from the last."
    )
    seed: int = Field(default=42, ge=0)


class SftGates(Model):
    max_loss: float = Field(default=0.5, gt=0.0)
    min_tool_call_accuracy: Fraction = 0.95
    eval_loss_window: Fraction = Field(
        default=0.2,
        description="Eval loss must decrease over this last fraction of training (0: not checked).",
    )

    def evaluate(self, metrics: dict[str, float]) -> list[GateResult]:
        """Metrics: train_loss (final), tool_call_accuracy, eval_loss_slope (over the window)."""
        checks: list[tuple[str, Op, float]] = [
            ("train_loss", "<", self.max_loss),
            ("tool_call_accuracy", ">=", self.min_tool_call_accuracy),
        ]
        if self.eval_loss_window > 0:
            checks.append(("eval_loss_slope", "<", 0.0))
        return _check_all("sft", metrics, checks)


class SftStage(Training):
    """Stage `coreAgent`: supervised fine-tuning on the Harmony agent trajectories."""

    epochs: float = Field(default=2.0, gt=0.0, le=100.0)
    packing: bool = True
    tool_call_prompts: int = Field(
        default=64, ge=1, le=10000, description="Held-out prompts generated on for tool-call format accuracy."
    )
    max_new_tokens: int = Field(default=256, ge=1, le=32768, description="Generation limit per such prompt.")
    gates: SftGates = Field(default_factory=SftGates)


class PreferencesStage(Model):
    """Sample N agent attempts per task with the SFT policy, execute them, rank into pairs."""

    samples: int = Field(default=4, ge=2, le=64)
    temperature: float = Field(default=0.8, gt=0.0, le=2.0)
    max_tasks: int = Field(default=2000, ge=1)
    max_turns: int = Field(default=8, ge=1, le=64)
    max_new_tokens: int = Field(default=2048, ge=1)


class IpoGates(Model):
    kl_warn: float = Field(default=0.3, gt=0.0)
    kl_abort: float = Field(
        default=0.5, gt=0.0, description="Checked during training too: the run stops early."
    )
    min_chosen_over_rejected: Fraction = Field(
        default=0.8, description="Pairs where chosen scores above rejected."
    )
    min_loss: float = Field(default=0.01, ge=0.0, description="A final loss below this is a collapse.")

    model_config = Model.model_config | {
        "json_schema_extra": _rules(
            {
                "rule": "!has(self.klWarn) || !has(self.klAbort) || self.klWarn < self.klAbort",
                "message": "klWarn must be below klAbort",
                "fieldPath": ".klWarn",
            }
        )
    }

    def evaluate(self, metrics: dict[str, float]) -> list[GateResult]:
        """Metrics: kl, chosen_over_rejected, final_loss."""
        return [
            check("ipo.kl", metrics.get("kl"), "<", self.kl_warn, "warn"),
            check("ipo.kl", metrics.get("kl"), "<", self.kl_abort),
            *_check_all(
                "ipo",
                metrics,
                [
                    ("chosen_over_rejected", ">=", self.min_chosen_over_rejected),
                    ("final_loss", ">", self.min_loss),
                ],
            ),
        ]


class IpoStage(Training):
    learning_rate: float = Field(default=5e-7, gt=0.0, le=1.0)
    gradient_accumulation: int = Field(default=16, ge=1, le=4096)
    epochs: float = Field(default=1.0, gt=0.0, le=100.0)
    beta: float = Field(default=0.1, gt=0.0, le=10.0)
    skip_without_pairs: bool = Field(
        default=False,
        description="With no informative preference pairs, carry the SFT adapter forward (recorded as "
        "skipped) instead of failing. Off by default: production runs should not skip IPO silently.",
    )
    gates: IpoGates = Field(default_factory=IpoGates)


class CurriculumStep(Model):
    step: int = Field(ge=0)
    max_length: int = Field(ge=128, le=262144)


CURRICULUM_MAX = 8


def _strictly_increasing(field: str) -> str:
    """A CEL rule over a list of at most CURRICULUM_MAX items, in standard CEL (no list extension)."""
    idx = ", ".join(str(i) for i in range(1, CURRICULUM_MAX))
    return f"!has(self.{field}) || [{idx}].all(i, i >= size(self.{field}) || self.{field}[i].step > self.{field}[i - 1].step)"


class Rewards(Model):
    """Execution rewards by outcome (moa.api.records.EvalOutcome.outcome)."""

    clean: float = Field(default=1.0, description="Tests pass, lint clean.")
    lint_warnings: float = Field(default=0.7, description="Tests pass with lint warnings.")
    tests_failed: float = Field(default=0.1, description="Compiles, tests fail.")
    compile_error: float = Field(default=-0.3, description="Compile or syntax failure.")
    patch_failed: float = Field(
        default=-1.0, description="An edit that does not apply: an invalid tool call."
    )
    invalid_tool_call: float = -1.0

    def reward(self, outcome: str) -> float:
        field = {
            "clean": self.clean,
            "lint_warnings": self.lint_warnings,
            "tests_failed": self.tests_failed,
            "compile_error": self.compile_error,
            "patch_failed": self.patch_failed,
            "invalid_tool_call": self.invalid_tool_call,
        }
        if outcome not in field:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {sorted(field)}")
        return field[outcome]


class GrpoGates(Model):
    min_mean_reward: float = Field(default=0.3, description="Mean reward over the last `window` steps.")
    window: int = Field(default=500, ge=1)
    min_reward_std: float = Field(default=0.01, ge=0.0)
    min_max_reward: float = Field(default=0.7, description="Reached at least once.")

    def evaluate(self, metrics: dict[str, float]) -> list[GateResult]:
        """Metrics: reward_mean_last (over `window`), reward_std, reward_max."""
        return _check_all(
            "grpo",
            metrics,
            [
                ("reward_mean_last", ">=", self.min_mean_reward),
                ("reward_std", ">=", self.min_reward_std),
                ("reward_max", ">=", self.min_max_reward),
            ],
        )


class GrpoStage(Training):
    learning_rate: float = Field(default=1e-6, gt=0.0, le=1.0)
    gradient_accumulation: int = Field(default=8, ge=1, le=4096)
    max_steps: int = Field(default=5000, ge=1)
    num_generations: int = Field(default=4, ge=2, le=64)
    temperature: float = Field(default=0.7, description="Sampling temperature, in (0, 2].")
    beta: float = Field(
        default=0.04, ge=0.0, le=10.0, description="KL weight against the SFT reference policy."
    )
    max_turns: int = Field(default=8, ge=1, le=64)
    max_new_tokens: int = Field(default=2048, ge=1)
    curriculum: list[CurriculumStep] = Field(
        default_factory=lambda: [
            CurriculumStep(step=0, max_length=4096),
            CurriculumStep(step=1000, max_length=8192),
            CurriculumStep(step=2000, max_length=16384),
            CurriculumStep(step=3500, max_length=32768),
        ],
        min_length=1,
        max_length=CURRICULUM_MAX,
        description="Long-context curriculum: prompt length limit from each step on.",
    )
    rewards: Rewards = Field(default_factory=Rewards)
    gates: GrpoGates = Field(default_factory=GrpoGates)

    model_config = Model.model_config | {
        "json_schema_extra": _rules(
            {
                "rule": "!has(self.temperature) || (self.temperature > 0.0 && self.temperature <= 2.0)",
                "message": "temperature must be in (0, 2]",
                "fieldPath": ".temperature",
            },
            {
                "rule": "!has(self.curriculum) || size(self.curriculum) == 0 || self.curriculum[0].step == 0",
                "message": "the curriculum must start at step 0",
                "fieldPath": ".curriculum",
            },
            {
                "rule": _strictly_increasing("curriculum"),
                "message": "curriculum steps must be strictly increasing",
                "fieldPath": ".curriculum",
            },
        )
    }

    def max_length_at(self, step: int) -> int:
        """The curriculum's prompt length limit at `step`."""
        current = self.curriculum[0].max_length
        for c in self.curriculum:
            if c.step <= step:
                current = c.max_length
        return current


class EvalTargets(Model):
    """Per-language targets the adapter must meet (defaults; a spec sets its language's values)."""

    min_compile_pass_rate: Fraction = 0.9
    min_test_pass_rate: Fraction = 0.6
    min_lint_clean_rate: Fraction = 0.7
    min_tool_call_accuracy: Fraction = 0.95
    max_hallucinated_api_rate: Fraction = 0.05
    max_median_iterations: float = Field(default=4.0, gt=0.0)


class RegressionLimits(Model):
    """Largest allowed drop against the base model, as fractions (0.02 = 2 points)."""

    max_humaneval_drop: Fraction = 0.02
    max_mmlu_drop: Fraction = 0.01
    max_tool_call_accuracy_drop: Fraction = 0.02
    unconfigured: Literal["blockPromotion", "blockTraining", "ignore"] = Field(
        default="blockPromotion",
        description="A regression check whose data is not configured (e.g. mmluData unset): "
        "blockPromotion records it as a failed warn gate (the run finishes; production promotion "
        "is refused), blockTraining fails the eval stage, ignore leaves it out.",
    )


class EvalStage(Model):
    max_tasks: int = Field(default=200, ge=1, description="Held-out repair tasks.")
    max_turns: int = Field(default=8, ge=1, le=64)
    humaneval_problems: int = Field(
        default=164, ge=0, le=164, description="0: no HumanEval regression check."
    )
    mmlu_questions: int = Field(default=1000, ge=0, description="0: no MMLU regression check.")
    mmlu_data: str | None = Field(
        default=None,
        max_length=1024,
        description="MMLU questions (JSONL: question, choices, answer) on the artifact store: a path "
        "relative to the artifact root, or absolute. Unset: the MMLU check is 'not configured'.",
    )
    max_new_tokens: int = Field(default=512, ge=1, le=32768, description="Generation limit per agent turn.")
    format_prompts: int = Field(
        default=64, ge=1, le=10000, description="Held-out prompts generated on for tool-call accuracy."
    )
    targets: EvalTargets = Field(default_factory=EvalTargets)
    regression: RegressionLimits = Field(default_factory=RegressionLimits)

    def evaluate(self, metrics: dict[str, float]) -> list[GateResult]:
        """Metrics: compile_pass_rate, test_pass_rate, lint_clean_rate, tool_call_accuracy,
        hallucinated_api_rate, median_iterations, and the drops vs base: humaneval_drop, mmlu_drop,
        tool_call_accuracy_drop."""
        t, r = self.targets, self.regression
        checks: list[tuple[str, Op, float]] = [
            ("compile_pass_rate", ">=", t.min_compile_pass_rate),
            ("test_pass_rate", ">=", t.min_test_pass_rate),
            ("lint_clean_rate", ">=", t.min_lint_clean_rate),
            ("tool_call_accuracy", ">=", t.min_tool_call_accuracy),
            ("hallucinated_api_rate", "<=", t.max_hallucinated_api_rate),
            ("median_iterations", "<=", t.max_median_iterations),
            ("tool_call_accuracy_drop", "<=", r.max_tool_call_accuracy_drop),
        ]
        if self.humaneval_problems:
            checks.append(("humaneval_drop", "<=", r.max_humaneval_drop))
        if self.mmlu_questions and self.mmlu_data is not None:
            checks.append(("mmlu_drop", "<=", r.max_mmlu_drop))
        # Targets over a sub-population are checked only when it exists: lint cleanliness and
        # iterations are over the tasks that ended green (none green: test_pass_rate carries the
        # verdict), and the hallucinated-API rate over applied patches in languages that measure
        # it. They are then left out of the gates (the report says "not measured"), never passed.
        green = (metrics.get("test_pass_rate") or 0.0) > 0.0
        defined = {
            "lint_clean_rate": green,
            "median_iterations": green,
            "hallucinated_api_rate": metrics.get("hallucinated_api_rate") is not None,
        }
        results = _check_all("eval", metrics, [c for c in checks if defined.get(c[0], True)])
        if self.not_configured() and r.unconfigured != "ignore":
            severity: Severity = "abort" if r.unconfigured == "blockTraining" else "warn"
            results.append(check("eval.mmlu_drop", None, "<=", r.max_mmlu_drop, severity))
        return results

    def not_configured(self) -> list[str]:
        """The regression checks the spec asks for whose data it does not name."""
        if self.mmlu_questions and self.mmlu_data is None:
            return ["MMLU: not configured (mmluQuestions > 0 but stages.eval.mmluData is unset)"]
        return []


# TRL/transformers report_to integrations.
Tracker = Annotated[
    str, Field(pattern=r"^(tensorboard|wandb|mlflow|trackio|comet_ml|clearml)$", max_length=16)
]


class StagesSpec(Model):
    report_to: list[Tracker] | None = Field(
        default=None,
        max_length=6,
        description="Experiment trackers the training stages log to (TRL's report_to). Unset: "
        "TensorBoard under reports/{lang}/tensorboard/{stage} when tensorboard is installed; "
        "[]: none. wandb/mlflow read their usual environment (WANDB_PROJECT, MLFLOW_TRACKING_URI).",
    )
    core_agent: SftStage = Field(default_factory=SftStage)
    preferences: PreferencesStage = Field(default_factory=PreferencesStage)
    ipo: IpoStage = Field(default_factory=IpoStage)
    grpo: GrpoStage = Field(default_factory=GrpoStage)
    eval: EvalStage = Field(default_factory=EvalStage)


# ----------------------------------------------------------------------------- resources


class Toleration(Model):
    key: str | None = Field(default=None, max_length=316)
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = Field(default=None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


IMAGE_REGISTRY = "ghcr.io/moa-dev"
IMAGE_TAG = "0.1.0"


class Images(Model):
    """Container images per component. The sandbox image is per language (its toolchain)."""

    trainer: str = Field(default=f"{IMAGE_REGISTRY}/moa-trainer:{IMAGE_TAG}", max_length=512)
    operator: str = Field(
        default=f"{IMAGE_REGISTRY}/moa-operator:{IMAGE_TAG}",
        max_length=512,
        description="Also runs light stages (data gate).",
    )
    sandbox: str | None = Field(
        default=None,
        max_length=512,
        description=f"Unset: {IMAGE_REGISTRY}/moa-sandbox-<language>:{IMAGE_TAG}.",
    )

    def sandbox_for(self, language: str) -> str:
        return self.sandbox or f"{IMAGE_REGISTRY}/moa-sandbox-{language}:{IMAGE_TAG}"


class SandboxResources(Model):
    """Pods that run untrusted code (mutants, model-written patches)."""

    runtime_class_name: Name | None = Field(
        default=None, description="e.g. gvisor; unset: the cluster default."
    )
    cpu: Quantity = "2"
    memory: Quantity = "8Gi"


Backend = Literal["job", "pytorchjob", "trainjob"]


class ResourcesSpec(Model):
    gpus: int = Field(default=1, ge=0, le=64, description="GPUs per training pod.")
    cpu: Quantity = "8"
    memory: Quantity = "96Gi"
    node_selector: dict[str, Annotated[str, Field(max_length=63)]] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
    queue_name: Name | None = Field(
        default=None, description="Kueue LocalQueue; sets kueue.x-k8s.io/queue-name."
    )
    backend: Backend = Field(default="job", description="Workload kind for GPU stages.")
    images: Images = Field(default_factory=Images)
    sandbox: SandboxResources = Field(default_factory=SandboxResources)
    pod_annotations: dict[str, dict[str, Annotated[str, Field(max_length=4096)]]] = Field(
        default_factory=dict,
        max_length=16,
        description="Annotations for the pods of each stage, keyed by stage name or `all` "
        "(e.g. cost attribution, sidecar opt-outs; the local control plane's fake pods read their outcome here).",
    )

    model_config = Model.model_config | {
        "json_schema_extra": _rules(
            {
                "rule": "!has(self.backend) || self.backend == 'job' || !has(self.gpus) || self.gpus > 0",
                "message": "pytorchjob and trainjob backends need gpus > 0",
                "fieldPath": ".gpus",
            }
        )
    }


class ConfigMapKeyRef(Model):
    """One key of a ConfigMap in the same namespace."""

    name: Name
    key: str = Field(default="ca.crt", max_length=253)


class Egress(Model):
    """Where one stage that needs the network may connect (NetworkPolicy egress, L3/L4)."""

    cidrs: list[Annotated[str, Field(max_length=43, pattern=r"^[0-9a-fA-F:.]+/[0-9]{1,3}$")]] = Field(
        default_factory=list,
        max_length=64,
        description="Allowed destinations. Empty: any public address (private, loopback, "
        "link-local and shared ranges stay unreachable: the cluster, the node, cloud metadata).",
    )
    ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        default_factory=lambda: [443], min_length=1, max_length=16, description="TCP ports allowed."
    )
    proxy: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://",
        description="An HTTP(S) proxy set as HTTPS_PROXY/HTTP_PROXY in the pod (its address belongs in cidrs).",
    )
    ca_bundle: ConfigMapKeyRef | None = Field(
        default=None,
        description="CA certificates to trust (PEM; e.g. a TLS-inspecting proxy's, with the public roots), "
        "mounted read-only and named by SSL_CERT_FILE; each language plugin points its toolchain at it.",
    )

    @field_validator("cidrs")
    @classmethod
    def _networks(cls, cidrs: list[str]) -> list[str]:
        for i, cidr in enumerate(cidrs):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as err:
                raise ValueError(f"cidrs[{i}]: {err}") from None
        return cidrs


class RegistryEgress(Egress):
    """The fetch pod's egress: package registries over HTTPS, and HTTP (some indexes redirect)."""

    ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        default_factory=lambda: [443, 80], min_length=1, max_length=16, description="TCP ports allowed."
    )


class NetworkSpec(Model):
    """Egress of the two stages that need the network; every other stage pod gets none.

    `fetch` downloads sources and their test dependencies from package registries; the
    trajectories pod of an API teacher reaches the teacher endpoint (the oracle needs nothing).
    """

    fetch: RegistryEgress = Field(default_factory=RegistryEgress)
    teacher: Egress = Field(default_factory=Egress)


# ----------------------------------------------------------------------------- spec / status


class AdapterTrainingSpec(Model):
    language: str = Field(
        pattern=DNS_LABEL, max_length=63, description="A registered language plugin, e.g. rust."
    )
    base_model: str = Field(
        default="checkpoints/coding_tui/final_merged",
        min_length=1,
        max_length=1024,
        description="Base checkpoint: a path relative to the artifact root, or absolute.",
    )
    storage: StorageSpec = Field(default_factory=StorageSpec)
    data: DataSpec = Field(default_factory=DataSpec)
    stages: StagesSpec = Field(default_factory=StagesSpec)
    lora: LoraSpec = Field(default_factory=LoraSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    max_attempts: int = Field(
        default=3, ge=1, le=20, description="Attempts per stage before the training fails."
    )
    backoff_seconds: int = Field(
        default=60, ge=0, le=86400, description="Wait before retrying a failed stage."
    )
    after: list[Name] = Field(
        default_factory=list, max_length=64, description="AdapterTrainings that must succeed first."
    )
    suspend: bool = False

    model_config = Model.model_config | {
        "json_schema_extra": _rules(
            {
                "rule": "self.stages.grpo.curriculum.all(c, c.maxLength <= self.lora.maxSeqLength)",
                "message": "curriculum lengths must not exceed lora.maxSeqLength",
                "fieldPath": ".stages.grpo.curriculum",
            }
        )
    }


Phase = Literal["Pending", "Running", "Succeeded", "Failed", "Suspended", "Waiting"]
StageState = Literal["Pending", "Running", "Succeeded", "Failed"]


class StageStatus(Model):
    name: str = Field(max_length=63)
    state: StageState = "Pending"
    start_time: datetime | None = None
    completion_time: datetime | None = None
    workload: ObjectRef | None = None
    attempts: int = Field(default=0, ge=0)
    message: str = Field(default="", max_length=4096)
    metrics: dict[str, float] = Field(default_factory=dict)
    gates: list[GateResult] = Field(default_factory=list, max_length=64)


class AdapterRef(Model):
    name: Name


class AdapterTrainingStatus(Model):
    observed_generation: int | None = Field(default=None, ge=0)
    conditions: list[Condition] = Field(default_factory=list, max_length=64)
    phase: Phase | None = None
    stage: str | None = Field(default=None, max_length=63)
    stages: list[StageStatus] = Field(default_factory=list, max_length=32)
    adapter: AdapterRef | None = None


class AdapterTraining(Model):
    """The whole resource: what `kubectl apply` sends and what the operator reads back."""

    api_version: Literal["moa.dev/v1alpha1"] = API_VERSION
    kind: Literal["AdapterTraining"] = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: AdapterTrainingSpec
    status: AdapterTrainingStatus | None = None

    model_config = Model.model_config | {
        "json_schema_extra": _rules(
            {
                "rule": "!has(self.spec.after) || !(self.metadata.name in self.spec.after)",
                "message": "an AdapterTraining cannot wait for itself",
                "fieldPath": ".spec.after",
            }
        )
    }


def _check_all(
    prefix: str, metrics: dict[str, float], checks: list[tuple[str, Op, float]], severity: Severity = "abort"
) -> list[GateResult]:
    return [
        check(f"{prefix}.{name}", metrics.get(name), op, threshold, severity)
        for name, op, threshold in checks
    ]


def load_training(path: str | Path) -> AdapterTraining:
    """Read one AdapterTraining from a YAML file (the first AdapterTraining document in it)."""
    text = Path(path).read_text()
    for doc in kube_yaml.load_all(text):
        if isinstance(doc, dict) and doc.get("kind") == KIND:
            return AdapterTraining.model_validate(doc)
    raise ValueError(f"{path}: no document with kind: {KIND}")
