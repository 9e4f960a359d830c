"""The local runner behind `moa run`: the planner's decisions, executed as processes.

It launches exactly the stage commands the operator launches in pods (`moa <group> <stage>
--config STAGE.yaml`), so a pipeline that works here works on a cluster. What it observes:
- a stage (or shard) whose metrics.json says `succeeded` is done, from this or an earlier run
  (that is what makes a re-run skip completed stages);
- a process it started is running until it exits; then its exit code and metrics.json say
  succeeded (0), gate failed (3) or failed (anything else, with the log's tail as the reason).
Failures and gate failures of earlier invocations are not carried over: a new `moa run` is a
new try (training stages resume from their checkpoints).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from moa.api.stages import STAGES, StageConfig, StageSummary, stage
from moa.api.training import AdapterTraining
from moa.pipeline.planner import Attempt, Launch, Observed, Plan, plan, shards_of

STATE_DIR = ".moa"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Process:
    launch: Launch
    popen: subprocess.Popen[bytes]
    log: Path
    started_at: datetime


@dataclass
class LocalRun:
    """One `moa run` of one AdapterTraining under `root` (the artifact root)."""

    training: AdapterTraining
    root: Path
    moa_command: Sequence[str] = field(default_factory=lambda: [sys.executable, "-m", "moa.cli"])
    env: dict[str, str] = field(default_factory=dict)
    poll_s: float = 0.5
    attempts: dict[tuple[str, str | None], list[Attempt]] = field(default_factory=dict)
    running: dict[str, _Process] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.state = self.root / STATE_DIR / self.name
        self.state.mkdir(parents=True, exist_ok=True)
        durations = self.state / "durations.json"
        if durations.exists():
            self.durations = json.loads(durations.read_text())
        self._adopt_finished()

    @property
    def name(self) -> str:
        return self.training.metadata.name or self.training.spec.language

    def stage_config(self, stage_name: str, shard: str | None) -> StageConfig:
        return StageConfig.for_training(self.training, stage_name, root=str(self.root), shard=shard)  # type: ignore[arg-type]

    def _summary(self, stage_name: str, shard: str | None) -> StageSummary | None:
        path = self.stage_config(stage_name, shard).layout.metrics(stage_name, shard)
        if not path.exists():
            return None
        try:
            return StageSummary.read(path)
        except ValueError:
            return None  # a torn or foreign file: the stage will run again

    def _adopt_finished(self) -> None:
        """Stages completed by earlier runs count as succeeded attempts."""
        spec = self.training.spec
        for st in STAGES:
            for shard in shards_of(spec, st):
                summary = self._summary(st.name, shard)
                if summary is not None and summary.status == "succeeded":
                    self.attempts[(st.name, shard)] = [Attempt("succeeded", summary=summary)]

    def rerun(self, stage_names: Sequence[str]) -> None:
        """Forget the named stages' results (and everything after the earliest), so they run again."""
        if not stage_names:
            return
        first = min(STAGES.index(stage(n)) for n in stage_names)
        for st in STAGES[first:]:
            for shard in shards_of(self.training.spec, st):
                self.attempts.pop((st.name, shard), None)
                path = self.stage_config(st.name, shard).layout.metrics(st.name, shard)
                path.unlink(missing_ok=True)

    def observe(self) -> Observed:
        attempts = {k: list(v) for k, v in self.attempts.items()}
        for proc in self.running.values():
            key = (proc.launch.stage, proc.launch.shard)
            attempts.setdefault(key, []).append(
                Attempt("running", started_at=proc.started_at, workload=proc.launch.name)
            )
        # Locally, `after` names other trainings under the same root: done when their marker exists.
        deps = {n: (self.root / STATE_DIR / n / "succeeded").exists() for n in self.training.spec.after}
        return Observed(
            now=_now(), attempts=attempts, dependencies=deps, generation=self.training.metadata.generation
        )

    def start(self, launch: Launch) -> None:
        config = self.stage_config(launch.stage, launch.shard)
        config_path = config.write(self.state / "configs" / f"{launch.name}.yaml")
        log = self.state / "logs" / f"{launch.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        argv = [*self.moa_command, *stage(launch.stage).command, "--config", str(config_path)]
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        with log.open("wb") as out:
            out.write(f"$ {' '.join(argv)}\n".encode())
            out.flush()
            popen = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self.running[launch.name] = _Process(launch, popen, log, _now())

    def reap(self) -> list[tuple[Launch, Attempt]]:
        """Collect finished processes into attempts."""
        finished: list[tuple[Launch, Attempt]] = []
        for name, proc in list(self.running.items()):
            code = proc.popen.poll()
            if code is None:
                continue
            del self.running[name]
            launch = proc.launch
            summary = self._summary(launch.stage, launch.shard)
            if code == 0 and summary is not None and summary.status == "succeeded":
                state = "succeeded"
            elif code == 3:
                state = "gate_failed"
            else:
                state = "failed"
            message = "" if state == "succeeded" else _tail(proc.log, code)
            attempt = Attempt(
                state,  # type: ignore[arg-type]
                started_at=proc.started_at,
                finished_at=_now(),
                message=message,
                summary=summary,
                workload=name,
                workload_kind="Process",
            )
            self.attempts.setdefault((launch.stage, launch.shard), []).append(attempt)
            if state == "succeeded":
                self._record_duration(launch.stage, (attempt.finished_at - proc.started_at).total_seconds())  # type: ignore[operator]
            finished.append((launch, attempt))
        return finished

    def _record_duration(self, stage_name: str, seconds: float) -> None:
        self.durations[stage_name] = seconds
        (self.state / "durations.json").write_text(json.dumps(self.durations, indent=1))

    def stop(self) -> None:
        for proc in self.running.values():
            proc.popen.terminate()
        for proc in self.running.values():
            try:
                proc.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.popen.kill()

    def step(self) -> Plan:
        """Observe, plan, launch. Returns the plan it acted on."""
        self.reap()
        current = plan(self.name, self.training.spec, self.observe())
        if current.phase in ("Succeeded", "Failed"):
            return current
        for launch in current.launches:
            if launch.name not in self.running:
                self.start(launch)
        return current

    def run(self, on_plan: Callable[[Plan, LocalRun], None] | None = None) -> Plan:
        """Run until the training succeeds, fails, or can make no progress; returns the final plan."""
        try:
            while True:
                current = self.step()
                if on_plan:
                    on_plan(current, self)
                if current.phase in ("Succeeded", "Failed"):
                    break
                if not self.running and not current.launches and current.requeue_after is None:
                    break  # suspended, or waiting on trainings that are not running here
                wait = self.poll_s if self.running else min(current.requeue_after or self.poll_s, 5.0)
                time.sleep(wait)
        finally:
            self.stop()
        if current.phase == "Succeeded":
            (self.state / "succeeded").write_text(_now().isoformat())
        return current


def _tail(log: Path, code: int, lines: int = 15) -> str:
    text = log.read_text(errors="replace").splitlines() if log.exists() else []
    tail = [line for line in text[-lines:] if line.strip()]
    return f"exit code {code}; log {log}:\n" + "\n".join(tail)
