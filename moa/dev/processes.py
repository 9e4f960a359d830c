"""Detached processes and loopback ports for the local control plane.

Components run in their own session so they outlive `moa dev cluster up` and Ctrl-C. A recorded
pid is trusted only while its command line still names the cluster's state dir: pids get reused.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

START_TIMEOUT_S = 90
STOP_GRACE_S = 15


def spawn(cmd: list[str], log: Path) -> int:
    """Start a detached process (own session: it outlives `moa dev cluster up` and Ctrl-C)."""
    with log.open("wb") as out:  # one start per log file: the current run is what matters
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    return proc.pid


def alive(pid: int) -> bool:
    """Running and not a zombie (a just-spawned child may not show its final command line yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def is_ours(pid: int, state_dir: Path) -> bool:
    """Alive and started with our state dir in its flags (pids get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return str(state_dir) in cmdline and alive(pid)


def wait_ready(name: str, pid: int, ready: Callable[[], bool], log: Path) -> None:
    """Poll READY until it holds; fail with the log's tail when the process exits or time runs out."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not alive(pid):
            raise RuntimeError(f"{name} exited during start-up:\n{tail(log)}")
        if ready():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{name} not healthy after {START_TIMEOUT_S} s:\n{tail(log)}")


def stop(name: str, pid: int, state_dir: Path, say: Callable[[str], None]) -> None:
    """SIGTERM, SIGKILL after STOP_GRACE_S; reaps the process when this one started it."""
    say(f"stopping {name} (pid {pid})")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while is_ours(pid, state_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    if is_ours(pid, state_dir):
        say(f"{name} ignored SIGTERM; killing it")
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it when this process started it (pytest fixture)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def http_ok(url: str, ctx: ssl.SSLContext | None) -> bool:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def tail(path: Path, lines: int = 25) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"
