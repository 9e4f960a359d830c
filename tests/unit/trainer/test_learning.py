"""Learning-signal tests: each training stage moves the figure it exists to move, and stops
moving it when its learning signal is inverted.

A sign error in a reward, a loss mask that selects the wrong tokens or a wrong reference policy
does not crash a trainer: the run finishes, writes an adapter and a loss curve, and learns the
wrong thing. So each test runs the stage's real trainer on the tiny model (CPU) with a small
task it can learn, once as built and once with its signal flipped inside the test:

- SFT (the stage's own `run_sft`) on synthetic tool-call trajectories raises held-out tool-call
  format accuracy; with the loss mask inverted (loss on everything but what the assistant writes)
  it does not.
- IPO (the stage's own `run_ipo`) widens the chosen-over-rejected log-ratio margin against the SFT
  reference while the true per-token KL to it stays bounded; with chosen and rejected swapped
  the margin goes the other way.
- GRPO (TRL's GRPOTrainer with the arguments the stage builds, `grpo_args`, and the stage's
  rollout, `AgentRollout`) makes a reward the SFT policy can reach (address the tool the task
  asks for) likelier than the alternatives, against the SFT policy; with the reward negated it
  makes it less likely.

Each learned figure is measured independently of what the trainer logs, on the original
(unflipped) data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trainer_fixtures as fx

from moa import harmony as h
from moa.agent.records import read_records
from moa.api.layout import Layout
from moa.api.stages import StageConfig, StageSummary
from moa.trainer import data

pytestmark = pytest.mark.slow

# The flipped run of each test must fail its learning assertion (strict: passing is an error).
FLIPPED = pytest.mark.xfail(
    strict=True, raises=AssertionError, reason="the inverted learning signal must not learn"
)
CONSTANT = {"lrScheduler": "constant", "warmupRatio": 0.0, "gradientAccumulation": 1, "saveSteps": 1000}
SFT_STEPS = 120
# Adam at 1e-2 on this LoRA overshoots: gradient norms spiked to 60-150 (against under 25 at 3e-3),
# training loss plateaued near 0.2 and whether greedy decoding closed the held-out call with
# <|call|> (the probe: three prompts, all at the first call, the only one that fits 256 tokens
# with the generation budget) came down to the seed: of 9 seeds, seed 7 scored 0 of 3 and seed 2
# 2 of 3. At 3e-3 all 8 tried (0-7) scored 3 of 3, loss near 0.1. The adapter's init is seeded by the spec (reproducible), so the SFT test runs
# the default seed and two others: it must not depend on a lucky draw.
SFT_LEARNING_RATE = 3e-3
SFT_OTHER_SEEDS = (1, 2)
FORMAT_PROMPTS = 8
MAX_NEW_TOKENS = 128


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fx.write_stage_data(tmp_path_factory.mktemp("learning"))


def inverted(tokenize: Any) -> Any:
    """tokenize_with_mask with the loss mask flipped: loss on every token the assistant did NOT write."""

    def tokenize_inverted(tokenizer: Any, conversation: h.Conversation) -> dict[str, list[int]]:
        out = tokenize(tokenizer, conversation)
        return out | {"assistant_masks": [1 - m for m in out["assistant_masks"]]}

    return tokenize_inverted


def run_sft(root: Path, tiny_model: Path, name: str, seed: int | None = None) -> StageSummary:
    from moa.trainer.sft import SftRun, run_sft

    stages = {
        "coreAgent": CONSTANT
        | {
            "learningRate": SFT_LEARNING_RATE,
            "gates": {"maxLoss": 100.0, "minToolCallAccuracy": 0.0, "evalLossWindow": 0.0},
        }
        | ({} if seed is None else {"seed": seed})
    }
    path = fx.stage_config(root, tiny_model, "sft", root / f"{name}.yaml", **stages)
    run = SftRun.from_config(
        StageConfig.load(path),
        output=root / name,
        max_steps=SFT_STEPS,
        format_prompts=FORMAT_PROMPTS,
        max_new_tokens=MAX_NEW_TOKENS,
    )
    return run_sft(run)


def base_format_accuracy(root: Path, tiny_model: Path) -> float:
    from moa.agent.policy import load_base
    from moa.trainer.toolcalls import format_accuracy

    layout = Layout(root, "python")
    prompts = data.tool_call_prompts(data.read_trajectories(layout.core_agent_eval), limit=FORMAT_PROMPTS)
    config = StageConfig.load(fx.stage_config(root, tiny_model, "sft", root / "base.yaml"))
    model, tokenizer, _ = load_base(tiny_model, config.spec.lora)
    result = format_accuracy(model, tokenizer, prompts, MAX_NEW_TOKENS, config.spec.lora.max_seq_length)
    assert result.accuracy is not None
    return result.accuracy


@pytest.fixture(scope="module")
def sft_adapter(root: Path, tiny_model: Path) -> Path:
    """The SFT adapter IPO and GRPO start from (the unflipped run)."""
    summary = run_sft(root, tiny_model, "sft_learned")
    assert summary.status == "succeeded", summary.message
    return root / "sft_learned"


@pytest.mark.parametrize(
    ("signal", "seed"),
    [("assistant tokens", None)]
    + [("assistant tokens", seed) for seed in SFT_OTHER_SEEDS]
    + [pytest.param("inverted mask", None, marks=FLIPPED)],
)
def test_sft_raises_tool_call_accuracy(
    signal: str,
    seed: int | None,
    root: Path,
    tiny_model: Path,
    sft_adapter: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = base_format_accuracy(root, tiny_model)
    if signal == "assistant tokens" and seed is None:
        summary = StageSummary.read(sft_adapter / "metrics.json")
    elif signal == "assistant tokens":
        summary = run_sft(root, tiny_model, f"sft_seed{seed}", seed)
    else:
        monkeypatch.setattr(data, "tokenize_with_mask", inverted(data.tokenize_with_mask))
        summary = run_sft(root, tiny_model, "sft_inverted")
    after = summary.metrics["tool_call_accuracy"]
    print(f"sft [{signal}, seed {seed or 'default'}]: tool-call format accuracy {before:.2f} -> {after:.2f}")
    assert after >= before + 0.3, f"tool-call accuracy {before:.2f} -> {after:.2f}"


def swapped(pairs: Path, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [r for _, r in read_records(pairs, ("prompt", "chosen", "rejected"))]
    out.write_text(
        "".join(json.dumps(r | {"chosen": r["rejected"], "rejected": r["chosen"]}) + "\n" for r in rows)
    )
    return out


# TRL's IPO pulls the per-token mean log-ratio gap toward 1 / (2 beta) = 1 nat; the SFT policy
# starts at 0. The margin measured here is summed over a completion's tokens (about 30).
IPO_BETA = 0.5
IPO_MIN_MARGIN = 2.0
IPO_KL_BOUND = 2.0  # nats per completion token; measured about 1.15 after these 16 steps


@pytest.mark.parametrize("signal", ["chosen over rejected", pytest.param("swapped", marks=FLIPPED)])  # fmt: skip
def test_ipo_widens_the_margin_with_bounded_kl(
    signal: str, root: Path, tiny_model: Path, sft_adapter: Path
) -> None:
    from moa.agent import policy as policy_loading
    from moa.trainer import divergence, loading
    from moa.trainer.ipo import IpoRun, run_ipo

    layout = Layout(root, "python")
    name = "ipo_" + signal.replace(" ", "_")
    pairs = (
        layout.ipo_train
        if signal == "chosen over rejected"
        else swapped(layout.ipo_train, root / name / "pairs.jsonl")
    )
    stages = {"ipo": CONSTANT | {"learningRate": 1e-3, "beta": IPO_BETA, "gates": {"klWarn": 50.0, "klAbort": 100.0, "minChosenOverRejected": 0.0, "minLoss": 0.0}}}  # fmt: skip
    path = fx.stage_config(root, tiny_model, "ipo", root / f"{name}.yaml", **stages)
    run = IpoRun.from_config(
        StageConfig.load(path), pairs=pairs, adapter=sft_adapter, output=root / name / "adapter", max_steps=16
    )
    summary = run_ipo(run)
    assert summary.status == "succeeded", summary.message

    # Measured afresh on the original pairs: the IPO adapter as policy, the SFT adapter as reference.
    spec = run.config.spec
    model, tokenizer, _ = policy_loading.load_base(tiny_model, spec.lora)
    model = policy_loading.load_adapter(model, run.output, trainable=False)
    model.load_adapter(str(sft_adapter), adapter_name=loading.REFERENCE_ADAPTER)
    model.set_adapter(policy_loading.ADAPTER_NAME)
    originals = data.read_pairs(layout.ipo_train)
    margin = divergence.margin(
        model, tokenizer, originals, loading.REFERENCE_ADAPTER, spec.lora.max_seq_length
    )
    chosen, rejected = divergence.pair_rows(tokenizer, originals, spec.lora.max_seq_length)
    kl = divergence.drift(model, chosen + rejected, loading.REFERENCE_ADAPTER, tokenizer.pad_token_id)
    print(
        f"ipo [{signal}]: margin {margin:.3f}, kl {kl.kl:.4f}/token, logged kl {summary.metrics['kl_final']:.4f}"
    )
    # The logged KL is the same measurement, on the pairs trained on (the same completions either way).
    assert summary.metrics["kl_final"] == pytest.approx(kl.kl, rel=1e-3, abs=1e-5)
    assert margin > IPO_MIN_MARGIN, f"chosen-over-rejected margin {margin:.3f}"
    assert 0.0 < kl.kl < IPO_KL_BOUND


def call_header(tool: str) -> str:
    """What the assistant writes to start a call of `tool`, up to its arguments."""
    text = h.render_message(h.tool_call(tool, {}))[len(data.ASSISTANT_HEADER) :]
    return text[: text.index("<|message|>")]


def calls_run_tests(completion: str) -> bool:
    """The reachable reward: the turn addresses the tool the task asks for."""
    return completion.startswith(call_header("run_tests"))


# The repository the GRPO points' episodes run in (each gets a private workspace of it): a real
# package, whose prepared tree the repair-task tests share. The reward reads the first turn only.
GRPO_SOURCE = "pypi:idna@3.6"


@pytest.mark.parametrize("signal", ["reward", pytest.param("negated reward", marks=FLIPPED)])  # fmt: skip
def test_grpo_raises_a_reachable_reward(signal: str, root: Path, tiny_model: Path, sft_adapter: Path) -> None:
    """The task: at each tool-call point of the held-out trajectories, call run_tests. The SFT
    policy samples it sometimes (it has seen run_tests, read_file and apply_patch there), so the
    reward is reachable; GRPO must make it likelier, measured as the policy's log-ratio to the
    SFT policy of that exact call. Episodes come from the stage's own rollout (`AgentRollout`:
    the agent loop, token ids and observation mask handed to TRL), one turn each so the reward
    stays reachable for a tiny model."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from moa.agent import policy as policy_loading
    from moa.agent.executor import Caps
    from moa.agent.rollout import Episode
    from moa.agent.tasks import RepairTask
    from moa.api.training import GrpoStage
    from moa.stage import StageDirs
    from moa.trainer import divergence
    from moa.trainer.grpo import AgentRollout, Curriculum, grpo_args

    layout = Layout(root, "python")
    points = data.tool_call_prompts(data.read_trajectories(layout.core_agent_train), limit=12)
    tasks = [
        RepairTask(f"point{i}", "python", GRPO_SOURCE, "", tuple(h.parse(p).messages))
        for i, p in enumerate(points)
    ]
    prompts = [t.prompt_text() for t in tasks]
    sign = 1.0 if signal == "reward" else -1.0

    def reward(prompts: list[Any], completions: list[Any], episode: list[Episode], **_: Any) -> list[float]:  # fmt: skip
        return [sign * float(calls_run_tests(ep.completions[0])) for ep in episode]

    stage = GrpoStage.model_validate(
        CONSTANT
        | {"learningRate": 1e-3, "numGenerations": 4, "temperature": 0.7, "beta": 0.0}
        | {"maxTurns": 1, "maxNewTokens": 12}
    )
    config = StageConfig.load(fx.stage_config(root, tiny_model, "grpo", root / "grpo.yaml"))
    model, tokenizer, backend = policy_loading.load_base(tiny_model, config.spec.lora)
    curriculum = Curriculum(
        stage, [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    )
    curriculum.at(0)  # the default curriculum's first length: room for every point
    model = policy_loading.load_adapter(model, sft_adapter, trainable=True)
    dirs = StageDirs(root / f"grpo_{'up' if sign > 0 else 'down'}")
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward,
        rollout_func=AgentRollout(dict(zip(prompts, tasks, strict=True)), stage, curriculum, Caps()),
        args=grpo_args(stage, backend, dirs, max_steps=16, completion_tokens=12),
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=tokenizer,
    )
    trainer.train()

    policy = trainer.model
    policy.load_adapter(str(sft_adapter), adapter_name="sft")
    policy.set_adapter(policy_loading.ADAPTER_NAME)

    def mean_log_ratio(tool: str) -> float:
        completion = tokenizer(call_header(tool), add_special_tokens=False)["input_ids"]
        rows = [(tokenizer(p, add_special_tokens=False)["input_ids"], completion) for p in prompts]
        ratios = divergence.drift(policy, rows, "sft", tokenizer.pad_token_id).log_ratios
        return sum(ratios) / len(ratios)

    others = ("read_file", "apply_patch", "search", "list_files")
    preference = mean_log_ratio("run_tests") - sum(mean_log_ratio(t) for t in others) / len(others)
    logged = [e["reward"] for e in trainer.state.log_history if "reward" in e]
    print(
        f"grpo [{signal}]: run_tests preference vs SFT {preference:.3f}; logged reward {logged[:3]} ... {logged[-3:]}"
    )
    assert preference > 0.5, f"run_tests over the other tools, against the SFT policy: {preference:.3f}"
