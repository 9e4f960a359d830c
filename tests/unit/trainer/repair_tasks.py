"""Real repair tasks for the preferences, GRPO and eval tests: caught one-line mutations of two
small PyPI packages (idna, toolz; `tests/unit/datagen/python_mutations.py`), written where the
stages read them, with a tiny random model and a fresh (untrained) LoRA adapter standing in
for each earlier stage's output (those stages are tested on their own).

The tasks' repository states are real: workspaces are the fetched sdists with the bug
applied, and every outcome comes from running their test suites in the sandbox.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

from moa import harmony as h
from moa.agent.tasks import Bug, bug_layout, grpo_task
from moa.api.records import FailingTest, MutationRecord
from moa.harmony.patch import make_patch

sys.path.insert(0, str(Path(__file__).parents[1] / "datagen"))
from python_mutations import MUTANTS, records

# idna valid_label_length (>63 -> >64) and toolz nth (seq[n] -> seq[n + 1]).
CHOSEN = (MUTANTS[0], MUTANTS[3])


@functools.lru_cache(maxsize=1)
def mutation_records() -> list[MutationRecord]:
    """The chosen mutations with the tests they fail and those tests' output, as the mutate stage
    records them: from a real run of each package's suite on the buggy state."""
    from moa.agent.executor import Executor
    from moa.agent.workspace import RepoState, Workspace

    out = []
    for r in records(CHOSEN):
        with Workspace.create(RepoState("python", r.source, r.diff)) as ws:
            executor = Executor(ws)
            executor.call("run_tests", {})
        run = executor.last_tests
        assert run is not None and not run.passed, f"{r.function}: the mutation is not caught"
        failing = [FailingTest(name=n, excerpt=run.output[-1500:]) for n in run.failing]
        out.append(r.model_copy(update={"failing_tests": failing}))
    return out


def task_rows(curriculum: tuple[int, ...] = (4096, 8192)) -> list[dict]:
    rows = []
    for i, r in enumerate(mutation_records()):
        task = Bug(f"{i:08x}{r.function}", r)
        rows.append(
            grpo_task(task, file_chars=2000 * (i + 1), curriculum=curriculum, layout=bug_layout(task))
        )
    return rows


@functools.lru_cache(maxsize=1)
def oracle_rows() -> list[dict]:
    """Trajectory rows (the eval split's shape) written by the oracle teacher through the real
    executor: read, test, patch, test, answer, every observation real."""
    import random

    from moa.agent.executor import Executor
    from moa.agent.tasks import prompt_messages
    from moa.agent.workspace import RepoState, Workspace
    from moa.datagen.oracle import OracleTeacher

    rows = []
    for i, r in enumerate(mutation_records()):
        task = Bug(f"{i:08x}{r.function}", r)
        prompt = prompt_messages(task)
        with Workspace.create(RepoState("python", r.source, r.diff)) as ws:
            episode = OracleTeacher(wrong_first_fraction=0.0).demonstrate(
                task, prompt, Executor(ws), random.Random(i)
            )
        assert episode.passed, episode.reason
        text = h.render(h.Conversation([*prompt, *episode.messages]), "training")
        rows.append(
            {
                "id": task.id,
                "language": "python",
                "source": r.source,
                "diff": r.diff,
                "file": r.file,
                "text": text,
            }
        )
    return rows


class ReplayPolicy:
    """Replays the assistant turns of recorded trajectories, one turn per call, chosen by how
    many tool calls the prompt already holds. It stands in for a trained model that can fix
    the bug (the tiny random one cannot); the loop, the executor and the judge stay real."""

    def __init__(self, texts: list[str]) -> None:
        self.turns = {}
        for text in texts:
            messages = h.parse(text).messages
            first = next(i for i, m in enumerate(messages) if m.role == "assistant")
            turns, current = [], []
            for m in messages[first:]:
                if m.role != "assistant":
                    continue
                current.append(m)
                if m.is_tool_call or m.channel == "final":
                    turns.append(current)
                    current = []
            prompt = h.render(h.Conversation(messages[:first]), "completion")
            self.turns[prompt] = [self.render(t) for t in turns]

    @staticmethod
    def render(turn: list) -> str:
        text = h.render(h.Conversation(turn), "training")
        return text[len("<|start|>assistant") :]

    def complete(self, prompts: list[str]) -> list[str]:
        out = []
        for p in prompts:
            key = next(k for k in self.turns if p.startswith(k[: -len("<|start|>assistant")]))
            out.append(self.turns[key][p.count("<|call|>")])
        return out


def write_rows(folder: Path, rows: list[dict], name: str = "trajectories.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def fix_patch(record: MutationRecord) -> str:
    """The known fix as the agent would write it: apply_patch reverting the mutation."""
    from moa.agent.workspace import RepoState, Workspace

    with Workspace.create(RepoState("python", record.source, record.diff)) as ws:
        buggy = (ws.root / record.file).read_text()
    fixed_line, buggy_line = next((m[3], m[4]) for m in MUTANTS if m[2] == record.function)
    return make_patch({record.file: (buggy, buggy.replace(buggy_line, fixed_line, 1))})


def patch_call(patch: str) -> str:
    """A model turn calling apply_patch, as the model writes it (after `<|start|>assistant`)."""
    return h.render_message(h.tool_call("apply_patch", {"patch": patch}))[len("<|start|>assistant") :]


def save_fresh_adapter(model_dir: Path, out: Path, lora: dict) -> Path:
    """A fresh LoRA on the tiny model saved where a previous stage would leave its adapter."""
    from moa.agent.policy import load_base
    from moa.api.training import LoraSpec
    from moa.trainer import loading

    spec = LoraSpec.model_validate(lora)
    model, tokenizer, _ = load_base(model_dir, spec)
    model = loading.add_lora(model, spec)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


BROKEN = "moa-test-broken"


def bad_patch(record: MutationRecord) -> str:
    """A patch that applies but leaves the file unparseable (a compile error)."""
    from moa.agent.workspace import RepoState, Workspace

    with Workspace.create(RepoState("python", record.source, record.diff)) as ws:
        buggy = (ws.root / record.file).read_text()
    buggy_line = next(m[4] for m in MUTANTS if m[2] == record.function)
    return make_patch(
        {record.file: (buggy, buggy.replace(buggy_line, buggy_line.rstrip(":") + " (  # " + BROKEN, 1))}
    )


class FixOrBreak:
    """Over the episodes of one batch: even ones replay the oracle (a fix); odd ones write
    `bad_patch`, then answer. Stands in for a sampled policy whose samples differ."""

    def __init__(self, rows: list[dict]) -> None:
        self.replay = ReplayPolicy([r["text"] for r in rows])
        records = {r.function: r for r in mutation_records()}
        self.bad = {
            prompt: patch_call(bad_patch(records[row["id"][8:]]))
            for row in rows
            for prompt in self.replay.turns
            if row["text"].startswith(prompt[: -len("<|start|>assistant")])
        }

    def complete(self, prompts: list[str]) -> list[str]:
        out = []
        for k, p in enumerate(prompts):
            bad = next(
                b for prompt, b in self.bad.items() if p.startswith(prompt[: -len("<|start|>assistant")])
            )
            if BROKEN in p:
                out.append(
                    h.render(h.Conversation([h.final("Done.")]), "training")[len("<|start|>assistant") :]
                )
            elif k % 2 == 1 and "<|call|>" not in p:
                out.append(bad)
            else:
                out.append(self.replay.complete([p])[0])
        return out


LORA = {"r": 8, "alpha": 16, "maxSeqLength": 2048, "loadIn4bit": False}


def repair_config(root: Path, model: Path, stage: str, **stages: object) -> Path:
    """The trainer tests' StageConfig (`trainer_fixtures.stage_config`) with room for these tasks'
    prompts (about 700 tokens of tools and instructions before any file is read)."""
    from trainer_fixtures import stage_config

    from moa.api.stages import StageConfig

    path = stage_config(root, model, stage, root / f"{stage}.yaml", **stages)
    config = StageConfig.load(path)
    lora = config.spec.lora.model_copy(update={"max_seq_length": LORA["maxSeqLength"]})
    spec = config.spec.model_copy(update={"lora": lora})
    return config.model_copy(update={"spec": spec}).write(path)
