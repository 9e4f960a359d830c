"""Fault campaign for the stages: each stage kind runs through its real CLI (`python -m moa.cli
...`) on small real inputs, is SIGKILLed (its whole process group) at a random moment, then is
run again to completion; its final artifacts are compared with an uninterrupted run measured in
the same campaign. Then the disk fills up mid-run: the stage's top-level folder is a small tmpfs
that has almost no room left.

Per stage kind, in the same run:
- baseline: the stage on a fresh copy of the inputs, uninterrupted (its wall time sets the range
  the kill moments are drawn from, uniformly, seeded by --seed);
- --kills trials: a fresh copy, a SIGKILL at the drawn moment, a re-run to the end. "resumed ok":
  the re-run exited as the baseline did, with no traceback; "identical": its artifacts equal the
  baseline's (data files by sha256 of their rows without wall-time fields, with test runners'
  "in 2.99s" durations and 0x addresses masked, all that two uninterrupted runs differ in; for
  training, metrics and adapter weights within TOLERANCE, since a resumed optimizer is not
  bit-for-bit the same float sequence); "litter": any path the baseline did not leave
  (temporary files, `.partial` folders, progress files, sandbox scratch `moa-sandbox-*` and
  setup scratch `moa-setup-*` in the run's private TMPDIR), except each attempt's TensorBoard
  log and torch's compile cache.
- disk full (root only: it mounts a tmpfs, and always unmounts it): the stage must fail with exit 1
  and a one-line error naming the lack of space (no traceback), leave every file that was on that
  disk before unchanged, and after the space is freed a re-run must give the baseline's artifacts.

Stage kinds: mutate (one shard of the demo: 4 mutants of pypi:inflection@0.5.1), trajectories
(oracle teacher on caught mutations of two PyPI packages), sft (the tiny model on generated
Harmony trajectories, a checkpoint every 2 steps), grpo (the tiny model on two real repair tasks,
a checkpoint every step), eval (a fresh adapter on the same two tasks as held-out trajectories).
Inputs are made by the test suites' own builders (`tests/unit/datagen/python_mutations.py`,
`tests/unit/trainer/trainer_fixtures.py`, `tests/unit/trainer/repair_tasks.py`).

Usage: .venv/bin/python bench/faults.py [--stages mutate,trajectories,sft,grpo,eval] [--kills 10] [--seed 7]
                                        [--no-disk-full]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "unit" / "datagen"), str(REPO / "tests" / "unit" / "trainer")]

# Fields that hold wall time, not results: left out when rows are compared.
TIMING_FIELDS = frozenset({"seconds", "train_seconds", "train_runtime", "train_samples_per_second",
                           "train_steps_per_second", "eval_runtime", "eval_samples_per_second",
                           "eval_steps_per_second", "total_flos", "timings", "mutants_per_minute"})  # fmt: skip
# Test output quoted in tool results carries what no two runs share, uninterrupted or not: the
# suite's duration ("180 passed in 2.99s") and object addresses in a failure's locals
# ("<function encode at 0x7f853d786ac0>"). Masked before rows are compared; nothing else is.
RUNNER_NOISE = (
    (re.compile(r"\bin \d+(?:\.\d+)?s\b"), "in <t>s"),
    (re.compile(r"\b0x[0-9a-f]{6,}\b"), "0x<addr>"),
)
# A resumed training run replays the same batches from the same RNG state, but not the same
# float sequence (a checkpoint's optimizer state is reloaded; thread scheduling reorders sums).
TOLERANCE = 1e-3  # relative, on training metrics; absolute on adapter weights
RUN_TIMEOUT_S = 1200
SFT_STEPS = 8


@dataclass(frozen=True)
class StageKind:
    """A stage as the campaign drives it: how to make its inputs under a root, its command line,
    the folder its artifacts are published in, and the top-level folder the disk-full case puts
    on a small tmpfs."""

    name: str
    prepare: Callable[[Path], list[str]]  # writes the inputs; returns the `moa` arguments
    published: Callable[[Path], list[Path]]  # folders whose files are the artifacts
    disk: str  # top-level folder under the root that the disk-full case mounts a tmpfs on
    training: bool = False


def prepare_trajectories(root: Path) -> list[str]:
    from python_mutations import stage_config, write_mutations

    write_mutations(root)
    return ["datagen", "trajectories", "--config", str(stage_config(root, "trajectories"))]


MUTATE_SOURCE = "pypi:inflection@0.5.1"  # the demo spec's first source (examples/demo-python.yaml)


def prepare_mutate(root: Path) -> list[str]:
    """One source, a few mutants: a shard of the demo's mutate stage, by its flags."""
    output = _layout(root).mutations_of(MUTATE_SOURCE)
    output.parent.mkdir(parents=True)  # the data folder the disk-full case puts on a tmpfs
    return ["datagen", "mutate", "--language", "python", "--source", MUTATE_SOURCE, "--output", str(output),
            "--max-mutations", "4"]  # fmt: skip


def tiny_base(root: Path) -> Path:
    """The tiny GPT-OSS-shaped model where the base checkpoint lives, made by `moa dev tiny-model`."""
    model: Path = _layout(root).base_checkpoint
    subprocess.run([sys.executable, "-m", "moa.cli", "dev", "tiny-model", "--output", str(model)],
                   check=True, capture_output=True)  # fmt: skip
    return model


def prepare_sft(root: Path) -> list[str]:
    from trainer_fixtures import stage_config, write_trajectories

    layout = _layout(root)
    model = tiny_base(root)
    write_trajectories(layout.core_agent_train, 16, seed=0)
    write_trajectories(layout.core_agent_eval, 2, seed=1)
    sft = {"learningRate": 1e-2, "lrScheduler": "constant", "warmupRatio": 0.0, "gradientAccumulation": 1,
           "saveSteps": 2, "gates": {"maxLoss": 100.0}}  # fmt: skip
    config = stage_config(root, model, "sft", root / "sft.yaml", coreAgent=sft)
    return ["train", "sft", "--config", str(config), "--max-steps", str(SFT_STEPS),
            "--format-prompts", "1", "--max-new-tokens", "8"]  # fmt: skip


def prepare_grpo(root: Path) -> list[str]:
    """Two real repair tasks (caught mutations of idna and toolz), a fresh adapter as SFT's."""
    from repair_tasks import LORA, repair_config, save_fresh_adapter, task_rows, write_rows

    layout = _layout(root)
    model = tiny_base(root)
    save_fresh_adapter(model, layout.sft_adapter, LORA)
    write_rows(layout.grpo_tasks, task_rows(), "tasks.jsonl")
    grpo = {"maxSteps": 3, "numGenerations": 2, "batchSize": 2, "gradientAccumulation": 1, "maxNewTokens": 12,
            "saveSteps": 1, "curriculum": [{"step": 0, "maxLength": 2048}], "gates": {"window": 2}}  # fmt: skip
    return ["train", "grpo", "--config", str(repair_config(root, model, "grpo", grpo=grpo))]


def prepare_eval(root: Path) -> list[str]:
    """The two repair tasks as oracle trajectories (held out), a fresh adapter as the final one."""
    from repair_tasks import LORA, oracle_rows, repair_config, save_fresh_adapter, write_rows

    layout = _layout(root)
    model = tiny_base(root)
    save_fresh_adapter(model, layout.final_adapter, LORA)
    write_rows(layout.core_agent_eval, oracle_rows())
    config = repair_config(root, model, "eval", eval={"maxTurns": 1, "humanevalProblems": 1})
    return ["eval", "--config", str(config), "--max-new-tokens", "12", "--format-prompts", "2"]


def _layout(root: Path) -> Any:
    from moa.api.layout import Layout

    return Layout(root, "python")


KINDS = {
    "mutate": StageKind("mutate", prepare_mutate, lambda root: [_layout(root).mutations], disk="data"),
    "trajectories": StageKind(
        "trajectories",
        prepare_trajectories,
        lambda root: [_layout(root).core_agent, _layout(root).grpo_tasks],
        disk="data",
    ),
    "sft": StageKind(
        "sft", prepare_sft, lambda root: [_layout(root).sft_adapter], disk="checkpoints", training=True
    ),
    "grpo": StageKind(
        "grpo", prepare_grpo, lambda root: [_layout(root).grpo_adapter], disk="checkpoints", training=True
    ),
    "eval": StageKind("eval", prepare_eval, lambda root: [_layout(root).stage_dir("eval")], disk="reports"),
}


# ------------------------------------------------------------------------------ running a stage


@dataclass
class Outcome:
    code: int
    output: str
    seconds: float
    killed: bool = False  # SIGKILLed while still running (not finished before the moment came)


def run_stage(root: Path, argv: list[str], kill_after: float | None = None) -> Outcome:
    """The stage's real command in its own session, with a private TMPDIR under `root`; SIGKILLed
    with its whole process group after `kill_after` seconds if it is still running then."""
    tmp = root / ".faults-tmp"
    tmp.mkdir(exist_ok=True)
    # PYTHONHASHSEED: peft saves an adapter's target_modules, a set, in string-hash order.
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONHASHSEED": "0", "PYTHONUNBUFFERED": "1", "MOA_TORCH_THREADS": "2",
           "TOKENIZERS_PARALLELISM": "false", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}  # fmt: skip
    log = root / ".faults-log"
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moa.cli", *argv], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        killed = False
        try:
            proc.wait(timeout=kill_after if kill_after is not None else RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            killed = kill_after is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            # Whatever the stage started (sandboxed test runs) dies with it, as in a killed pod.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text(errors="replace")
    log.unlink()
    return Outcome(proc.returncode, text, time.monotonic() - started, killed)


def clean_exit(outcome: Outcome, expected: int) -> bool:
    return outcome.code == expected and "Traceback" not in outcome.output


# ------------------------------------------------------------------------------ artifacts and litter


def _without_timing(value: Any) -> Any:
    """A JSON value with its wall-time fields left out and test runners' durations masked."""
    if isinstance(value, str):
        for pattern, mask in RUNNER_NOISE:
            value = pattern.sub(mask, value)
        return value
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k not in TIMING_FIELDS}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def is_timing_row(line: str) -> bool:
    """`| seconds | 65.36 |`: a Markdown table row of a wall-time metric."""
    cells = line.split("|")
    return len(cells) > 2 and cells[1].strip() in TIMING_FIELDS


def digest(path: Path, root: Path) -> str:
    """sha256 of a file; for JSON and JSONL, of its rows without wall-time fields and with the
    run's own root folder written as <root> (a saved adapter's config names its base by path);
    for a Markdown report, without its wall-time table rows."""
    if path.suffix in (".json", ".jsonl"):
        try:
            text = path.read_text().replace(str(root), "<root>")
            if path.suffix == ".json":
                rows = [json.loads(text)]
            else:
                rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            canonical = json.dumps(_without_timing(rows), sort_keys=True)
            return hashlib.sha256(canonical.encode()).hexdigest()
        except ValueError:
            pass  # not JSON after all: compared byte for byte
    if path.suffix == ".md":  # a report's metric table has a wall-time row
        lines = path.read_text().splitlines()
        kept = [line for line in lines if not is_timing_row(line)]
        return hashlib.sha256("\n".join(kept).encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def artifacts(root: Path, kind: StageKind) -> dict[str, Path]:
    """Every published file of the stage, by its path under the root."""
    found: dict[str, Path] = {}
    for folder in kind.published(root):
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                found[str(path.relative_to(root))] = path
    return found


def _metrics(path: Path) -> dict[str, float]:
    return _without_timing(json.loads(path.read_text()).get("metrics", {}))  # type: ignore[no-any-return]


def _weights_differ(a: Path, b: Path) -> float:
    from safetensors.numpy import load_file

    x, y = load_file(str(a)), load_file(str(b))
    if x.keys() != y.keys():
        return float("inf")
    return max((float(abs(x[k].astype("float64") - y[k].astype("float64")).max()) for k in x), default=0.0)


def differences(root: Path, baseline: Path, kind: StageKind) -> list[str]:
    """What differs between a run's artifacts and the baseline's; empty when they are identical
    (for training: within TOLERANCE, where only metrics, weights and history may move)."""
    mine, theirs = artifacts(root, kind), artifacts(baseline, kind)
    if mine.keys() != theirs.keys():
        return [f"files: {sorted(mine.keys() ^ theirs.keys())}"]
    diffs = []
    for name, path in mine.items():
        if digest(path, root) == digest(theirs[name], baseline):
            continue
        if kind.training and path.name == "metrics.json":
            a, b = _metrics(path), _metrics(theirs[name])
            far = [k for k in a.keys() | b.keys() if k not in a or k not in b
                   or abs(a[k] - b[k]) > TOLERANCE * max(1.0, abs(b[k]))]  # fmt: skip
            diffs += [f"{name}: {k} {a.get(k)} vs {b.get(k)}" for k in sorted(far)]
        elif kind.training and path.suffix == ".safetensors":
            gap = _weights_differ(path, theirs[name])
            if gap > TOLERANCE:
                diffs.append(f"{name}: weights differ by up to {gap:.3g}")
        elif not (kind.training and (path.suffix in (".png", ".md") or path.name == "history.json")):
            # for training, plots, the report and the step history carry the metrics compared above
            diffs.append(f"{name}: content differs")
    return diffs


# Not litter: every attempt's TensorBoard event file (named by time and pid: the log of each
# attempt, kept like a pod's log) and torch's compile cache, which torch keeps in TMPDIR.
NOT_LITTER = (
    re.compile(r"(^|/)events\.out\.tfevents\.[^/]*$"),
    re.compile(r"(^|/)\.faults-tmp/torchinductor_[^/]*(/|$)"),
)


def paths_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def litter(root: Path, baseline: Path) -> list[str]:
    """What the run left (its TMPDIR included) that the uninterrupted baseline did not: temporary
    and progress files, `.partial` folders, sandbox scratch."""
    extra = paths_under(root) - paths_under(baseline)
    return sorted(p for p in extra if not any(pattern.search(p) for pattern in NOT_LITTER))


# ------------------------------------------------------------------------------ the campaign


@dataclass
class Row:
    stage: str
    kills: int = 0
    killed_mid_run: int = 0
    resumed_ok: int = 0
    identical: int = 0
    litter: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class Baseline:
    root: Path
    argv: list[str]
    outcome: Outcome


def fresh_copy(inputs: Path, dest: Path) -> Path:
    shutil.copytree(inputs, dest, symlinks=True)
    return dest


def prepare(kind: StageKind, work: Path) -> tuple[Path, list[str]]:
    """The stage's inputs, made once; every run works on its own copy of them."""
    inputs = work / f"{kind.name}-inputs"
    inputs.mkdir(parents=True)
    return inputs, kind.prepare(inputs)


def argv_for(argv: list[str], inputs: Path, root: Path) -> list[str]:
    """The same command on another copy of the inputs (paths in it moved to that copy)."""
    moved = [a.replace(str(inputs), str(root)) for a in argv]
    if "--config" in moved:
        config = Path(moved[moved.index("--config") + 1])
        config.write_text(config.read_text().replace(str(inputs), str(root)))
    return moved


def baseline_run(kind: StageKind, inputs: Path, argv: list[str], work: Path) -> Baseline:
    root = fresh_copy(inputs, work / f"{kind.name}-baseline")
    outcome = run_stage(root, argv_for(argv, inputs, root))
    if outcome.code not in (0, 3):
        sys.exit(f"{kind.name} baseline failed (exit {outcome.code}): {outcome.output[-2000:]}")
    return Baseline(root, argv_for(argv, inputs, root), outcome)


def kill_trial(kind: StageKind, inputs: Path, argv: list[str], base: Baseline, root: Path, at: float) -> Row:
    """One kill at `at` seconds, then a re-run to the end, judged against the baseline."""
    row = Row(kind.name, kills=1)
    started = time.monotonic()
    fresh_copy(inputs, root)
    command = argv_for(argv, inputs, root)
    killed = run_stage(root, command, kill_after=at)
    row.killed_mid_run = int(killed.killed)
    again = run_stage(root, command)
    row.seconds = time.monotonic() - started
    row.resumed_ok = int(clean_exit(again, base.outcome.code))
    diffs = differences(root, base.root, kind)
    row.identical = int(not diffs)
    left = litter(root, base.root)
    row.litter = int(bool(left))
    row.notes = [f"kill at {at:.1f}s{'' if killed.killed else ' (had finished)'}", *diffs[:3], *left[:3]]
    if not row.resumed_ok:
        row.notes.append(f"re-run exit {again.code}: {again.output[-300:]}")
    return row


def kill_campaign(
    kind: StageKind, work: Path, kills: int, rng: random.Random
) -> tuple[Row, Baseline, Path, list[str]]:
    inputs, argv = prepare(kind, work)
    base = baseline_run(kind, inputs, argv, work)
    total = Row(kind.name, seconds=0.0)
    for i in range(kills):
        at = rng.uniform(0.0, base.outcome.seconds)
        trial = kill_trial(kind, inputs, argv, base, work / f"{kind.name}-kill-{i}", at)
        print(f"  {kind.name} kill {i + 1}/{kills}: " + "; ".join(trial.notes), flush=True)
        for name in ("kills", "killed_mid_run", "resumed_ok", "identical", "litter"):
            setattr(total, name, getattr(total, name) + getattr(trial, name))
        total.seconds += trial.seconds
        shutil.rmtree(work / f"{kind.name}-kill-{i}", ignore_errors=True)
    return total, base, inputs, argv


# ------------------------------------------------------------------------------ the disk fills up

FREE_BYTES = 16 * 1024  # room left on the small disk: less than any stage writes


@contextlib.contextmanager
def small_disk(folder: Path) -> Iterator[Path]:
    """`folder` on a tmpfs holding its current content with FREE_BYTES to spare; unmounted (and the
    content put back on the real disk) however the block ends."""
    aside = folder.with_name(folder.name + ".aside")
    folder.mkdir(exist_ok=True)  # a stage's first output folder may not exist before it runs
    folder.rename(aside)
    folder.mkdir()
    size = sum(p.stat().st_size for p in aside.rglob("*") if p.is_file()) + 64 * 1024 * 1024
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "moa-faults-full", str(folder)], check=True)
    try:
        shutil.copytree(aside, folder, dirs_exist_ok=True, symlinks=True)
        fill(folder / ".filler")
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)
        folder.rmdir()
        aside.rename(folder)


def fill(path: Path) -> None:
    """Write `path` until the disk is full, then give back FREE_BYTES."""
    with path.open("wb", buffering=0) as fh:
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 65536)
        size = fh.tell()
    os.truncate(path, max(0, size - FREE_BYTES))


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".filler"}  # fmt: skip


@dataclass
class DiskFull:
    stage: str
    exit_code: int
    clear_error: bool
    previous_intact: bool
    nothing_published: bool
    rerun_identical: bool
    litter: list[str]
    seconds: float
    notes: list[str]


def disk_full(kind: StageKind, inputs: Path, argv: list[str], base: Baseline, work: Path) -> DiskFull:
    """The stage on a disk with FREE_BYTES left, then again once the space is back."""
    root = fresh_copy(inputs, work / f"{kind.name}-disk-full")
    command = argv_for(argv, inputs, root)
    started = time.monotonic()
    with small_disk(root / kind.disk) as disk:
        before = hashes(disk)
        outcome = run_stage(root, command)
        after = hashes(disk)
        published = [p for p in artifacts(root, kind) if p.endswith("metrics.json")]
        (disk / ".filler").unlink()
        again = run_stage(root, command)
        ok = clean_exit(again, base.outcome.code)
        diffs = (
            differences(root, base.root, kind) if ok else [f"re-run exit {again.code}: {again.output[-300:]}"]
        )
        left = sorted(paths_under(disk) - paths_under(base.root / kind.disk))
    return DiskFull(
        stage=kind.name,
        exit_code=outcome.code,
        clear_error=outcome.code == 1
        and "No space left" in outcome.output
        and "Traceback" not in outcome.output,
        previous_intact=all(after.get(k) == v for k, v in before.items()),
        nothing_published=not published,
        rerun_identical=not diffs,
        litter=left,
        seconds=time.monotonic() - started,
        notes=[line for line in outcome.output.splitlines() if line.startswith("moa: error")][-2:]
        + diffs[:3]
        + left[:3],
    )


# ------------------------------------------------------------------------------ report


def kill_table(rows: list[Row]) -> str:
    lines = ["| stage | kills | killed mid-run | resumed ok | identical artifacts | litter found | seconds |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r.stage} | {r.kills} | {r.killed_mid_run} | {r.resumed_ok}/{r.kills} | "
                     f"{r.identical}/{r.kills} | {r.litter} | {r.seconds:.0f} |")  # fmt: skip
    return "\n".join(lines)


def disk_table(rows: list[DiskFull]) -> str:
    yes = {True: "yes", False: "NO"}
    lines = ["| stage (disk full) | exit | clear error | previous files intact | nothing published | "
             "re-run identical | litter found | seconds |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r.stage} | {r.exit_code} | {yes[r.clear_error]} | {yes[r.previous_intact]} | "
                     f"{yes[r.nothing_published]} | {yes[r.rerun_identical]} | {len(r.litter)} | {r.seconds:.0f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stages", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    parser.add_argument("--kills", type=int, default=10, help="SIGKILL trials per stage kind")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-disk-full", action="store_true", help="skip the disk-full case")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    can_mount = os.geteuid() == 0 and not args.no_disk_full
    work = Path(tempfile.mkdtemp(prefix="moa-faults-"))
    rows, full = [], []
    try:
        for name in args.stages.split(","):
            kind = KINDS[name]
            row, base, inputs, argv = kill_campaign(kind, work, args.kills, rng)
            rows.append(row)
            print(
                f"{name}: uninterrupted run {base.outcome.seconds:.0f}s (exit {base.outcome.code})",
                flush=True,
            )
            if can_mount:
                full.append(disk_full(kind, inputs, argv, base, work))
                print(f"  {name} disk full: " + "; ".join(full[-1].notes), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(kill_table(rows))
    if full:
        print()
        print(disk_table(full))
    elif not args.no_disk_full:
        print("\ndisk full: not run (mounting a tmpfs needs root)")
    ok = all(r.resumed_ok == r.identical == r.kills and not r.litter for r in rows)
    ok = ok and all(
        f.clear_error and f.previous_intact and f.nothing_published and f.rerun_identical and not f.litter
        for f in full
    )
    print(f"\n{'every fault recovered' if ok else 'FAULTS NOT RECOVERED: see the rows above'} "
          f"(training metrics and weights within {TOLERANCE:g})")  # fmt: skip
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
