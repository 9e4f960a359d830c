"""`moa serve` on loopback: the tiny model, real adapters trained here, a real registry."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("MOA_TORCH_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LANGUAGES = ("python", "rust", "typescript", "go")
REPO = Path(__file__).resolve().parents[3]


@dataclass
class Workdir:
    root: Path
    base: Path

    def artifact(self, tag: str) -> Path:
        return self.root / "checkpoints" / "adapters" / tag


@pytest.fixture(scope="session")
def served_workdir(tmp_path_factory: pytest.TempPathFactory) -> Workdir:
    """A workdir as `moa run` leaves it: a base model, adapters, registry entries. Production:
    one adapter per language; `go-canary` evaluating with a 0.3 canary weight; `python-v2`
    trained (not yet promoted); `rust-draft` trained (never served)."""
    import torch

    torch.set_num_threads(int(os.environ["MOA_TORCH_THREADS"]))
    from moa.trainer.tiny_model import build
    from tests.unit.serving.tiny_adapters import register, trained

    root = tmp_path_factory.mktemp("workdir")
    base = build(root / "checkpoints" / "coding_tui" / "final_merged")
    work = Workdir(root, base)
    for language in LANGUAGES:
        register(root, f"{language}-coding", language, trained(base, work.artifact(language), language), base)
    register(
        root,
        "go-canary",
        "go",
        trained(base, work.artifact("go-canary"), "go-canary"),
        base,
        "evaluating",
        0.3,
    )
    register(root, "python-v2", "python", trained(base, work.artifact("python2"), "python2"), base, "trained")
    register(root, "rust-draft", "rust", work.artifact("rust"), base, "trained")
    return work


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def start(args: list[str], log: Path, timeout_s: float = 180, ready_with_no_adapter: bool = False) -> Server:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("wb") as fh:
        process = subprocess.Popen(
            [sys.executable, "-m", "moa.cli", "serve", *args, "--port", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moa serve exited {process.returncode}:\n{server.output()}")
        try:
            ready = httpx.get(server.url + "/readyz", timeout=2).status_code == 200
            if ready or (
                ready_with_no_adapter and httpx.get(server.url + "/healthz", timeout=2).status_code == 200
            ):
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop(server)
    raise RuntimeError(f"moa serve was not ready in {timeout_s}s:\n{server.output()}")


def stop(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def server(served_workdir: Workdir, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("logs") / "serve.log"
    running = start(
        ["--workdir", str(served_workdir.root), "--poll-interval", "0.3", "--default-language", "python"], log
    )
    yield running
    stop(running)
