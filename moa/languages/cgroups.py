"""A cgroup per sandboxed run: total memory, task count and CPU of the whole process tree, and a
way to kill every descendant, however it daemonised.

Works with cgroup v1 (one hierarchy per controller, what this kind of host without systemd has)
and v2 (one unified hierarchy). The group is created under the caller's own group, so the
caller's limits still apply on top. Where the hierarchy is not writable (an unprivileged user,
a read-only /sys/fs/cgroup in a pod), `create` returns None with the reason and the sandbox
falls back to per-process rlimits; in a pod the container's own cgroup does this job.

A run killed with SIGKILL cannot remove its group; `clean_stale` removes the groups of dead
owners (the owner's pid is in the name) at the next start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PREFIX = "moa-sandbox-"
_V1_CONTROLLERS = ("memory", "pids", "cpu")
_CFS_PERIOD_US = 100_000


def _own_paths(root: Path) -> dict[str, Path]:
    """controller -> this process's group folder ("" is the v2 unified hierarchy)."""
    paths: dict[str, Path] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, rel = line.split(":", 2)
        for ctrl in controllers.split(",") if controllers else [""]:
            base = root if ctrl == "" else root / ctrl
            if ctrl in (*_V1_CONTROLLERS, "") and base.is_dir():
                paths[ctrl] = base / rel.lstrip("/")
    if (root / "cgroup.controllers").exists():  # pure v2: ignore the v1 lines, there are none
        return {"": paths[""]} if "" in paths else {}
    paths.pop("", None)
    return paths


def _write(path: Path, value: str) -> None:
    path.write_text(value)


@dataclass
class Cgroup:
    folders: dict[str, Path]  # controller -> this run's group

    @classmethod
    def create(
        cls, tag: str, *, memory_mb: int | None, tasks: int | None, cpus: float | None, root: Path = ROOT
    ) -> tuple[Cgroup | None, str]:
        """A new group with the limits set, or None and why not."""
        try:
            parents = _own_paths(root)
        except (OSError, ValueError) as exc:
            return None, f"cgroups unreadable ({exc})"
        if not parents:
            return None, "no memory/pids cgroup controller mounted"
        name = f"{PREFIX}{os.getpid()}-{tag}"
        group = cls({ctrl: parent / name for ctrl, parent in parents.items()})
        try:
            for folder in group.folders.values():
                folder.mkdir()
            group._limit(memory_mb, tasks, cpus)
        except OSError as exc:
            group.remove()
            return None, f"cgroups not writable ({exc.strerror or exc})"
        return group, "cgroup " + ("v2" if "" in group.folders else "v1")

    def _limit(self, memory_mb: int | None, tasks: int | None, cpus: float | None) -> None:
        if "" in self.folders:  # v2
            folder = self.folders[""]
            if memory_mb:
                _write(folder / "memory.max", str(memory_mb << 20))
                with contextlib.suppress(OSError):  # no swap accounting on this host
                    _write(folder / "memory.swap.max", "0")
            if tasks:
                _write(folder / "pids.max", str(tasks))
            if cpus:
                _write(folder / "cpu.max", f"{int(cpus * _CFS_PERIOD_US)} {_CFS_PERIOD_US}")
            return
        if memory_mb and "memory" in self.folders:
            _write(self.folders["memory"] / "memory.limit_in_bytes", str(memory_mb << 20))
            with contextlib.suppress(OSError):  # memsw exists only with swap accounting on
                _write(self.folders["memory"] / "memory.memsw.limit_in_bytes", str(memory_mb << 20))
        if tasks and "pids" in self.folders:
            _write(self.folders["pids"] / "pids.max", str(tasks))
        if cpus and "cpu" in self.folders:
            _write(self.folders["cpu"] / "cpu.cfs_period_us", str(_CFS_PERIOD_US))
            _write(self.folders["cpu"] / "cpu.cfs_quota_us", str(int(cpus * _CFS_PERIOD_US)))

    def enter(self) -> None:
        """Move the calling process in (run in the child between fork and exec)."""
        for folder in self.folders.values():
            _write(folder / "cgroup.procs", str(os.getpid()))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for folder in self.folders.values():
            with contextlib.suppress(OSError):
                found |= {int(p) for p in (folder / "cgroup.procs").read_text().split()}
        return found

    def kill(self, patience_s: float = 5.0) -> None:
        """SIGKILL everything in the group until it is empty (a fork may race the first pass)."""
        deadline = time.monotonic() + patience_s
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def _counter(self, controller: str, file: str, key: str) -> int:
        folder = self.folders.get("" if "" in self.folders else controller)
        if folder is None:
            return 0
        with contextlib.suppress(OSError, ValueError):
            for line in (folder / file).read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
        return 0

    def oom_kills(self) -> int:
        if "" in self.folders:
            return self._counter("", "memory.events", "oom_kill")
        return self._counter("memory", "memory.oom_control", "oom_kill")

    def task_limit_hits(self) -> int:
        return self._counter("pids", "pids.events", "max")

    def remove(self) -> None:
        self.kill()
        for folder in self.folders.values():
            with contextlib.suppress(OSError):
                folder.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(root: Path = ROOT) -> int:
    """Remove the groups left by runs whose owning process is gone; returns how many."""
    removed = 0
    with contextlib.suppress(OSError, ValueError):
        for ctrl, parent in _own_paths(root).items():
            for folder in parent.glob(PREFIX + "*"):
                owner = folder.name[len(PREFIX) :].split("-", 1)[0]
                if owner.isdigit() and not _alive(int(owner)):
                    Cgroup({ctrl: folder}).remove()
                    removed += not folder.exists()
    return removed
