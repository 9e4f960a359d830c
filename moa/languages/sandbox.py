"""Run untrusted code (mutated repos, model-written patches) with no network, limits and a
timeout, able to write only inside its work folder.

Preferred isolation is bubblewrap: a read-only view of the host, the work folder (and any
explicitly listed cache folders) bound writable, a private temporary folder (TMPDIR, removed
afterwards), fresh network and PID namespaces. /tmp itself stays visible read-only rather than
masked, so a checkout or virtualenv that happens to live under /tmp still works inside. Where bwrap is missing or user namespaces are off, we fall back to
`unshare --net` (no network, but the filesystem is not protected) and say so: `isolation()`
reports what is actually in effect, and callers log it. Never a silent downgrade.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

# Environment variables passed through; everything else (tokens, credentials) is dropped.
_PASS_ENV = (
    "PATH",
    "LANG",
    "LC_ALL",
    "TERM",
    "RUSTUP_HOME",
    "CARGO_HOME",
    "GOROOT",
    "GOPATH",
    "GOCACHE",
    "GOMODCACHE",
    "GOFLAGS",
    "GOTOOLCHAIN",
    "NODE_PATH",
    "JAVA_HOME",
    "PYENV_ROOT",
    "SSL_CERT_FILE",
)


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 600.0
    cpu_s: int | None = None  # RLIMIT_CPU per process
    memory_mb: int | None = None  # RLIMIT_AS; off by default (Go and Node reserve huge virtual ranges)
    file_size_mb: int | None = 1024  # RLIMIT_FSIZE: no single file larger than this
    open_files: int | None = 4096


@dataclass
class Result:
    returncode: int
    output: str  # stdout and stderr interleaved
    seconds: float
    timed_out: bool = False
    isolation: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


@dataclass(frozen=True)
class Sandbox:
    """A reusable policy: which folders are writable besides the work folder, network on/off."""

    writable: Sequence[Path] = ()
    readonly_extra: Sequence[Path] = ()
    network: bool = False
    limits: Limits = field(default_factory=Limits)

    def run(
        self,
        cmd: Sequence[str],
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
        limits: Limits | None = None,
        stdin: str | None = None,
    ) -> Result:
        return run(
            cmd,
            workdir,
            writable=self.writable,
            network=self.network,
            env=env,
            limits=limits or self.limits,
            stdin=stdin,
        )


@cache
def _bwrap_works() -> bool:
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False
    probe = subprocess.run(
        [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-net", "--unshare-pid", "true"],
        capture_output=True,
    )
    return probe.returncode == 0


@cache
def _unshare_net_works() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    return subprocess.run([unshare, "--net", "true"], capture_output=True).returncode == 0


def isolation(network: bool = False) -> str:
    """A one-line description of the isolation `run` applies on this machine."""
    if _bwrap_works():
        return "bwrap: read-only host, writable work folder, private TMPDIR, pid namespace, " + (
            "network allowed" if network else "no network"
        )
    if not network and _unshare_net_works():
        return "unshare --net: no network, but the filesystem is NOT protected (install bubblewrap)"
    return "none: no network or filesystem isolation available (install bubblewrap)"


def _wrap(cmd: Sequence[str], workdir: Path, writable: Sequence[Path], network: bool) -> list[str]:
    if _bwrap_works():
        argv = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        for path in (workdir, *writable):
            path.mkdir(parents=True, exist_ok=True)
            argv += ["--bind", str(path), str(path)]
        if not network:
            argv.append("--unshare-net")
        argv += ["--unshare-pid", "--die-with-parent", "--new-session", "--chdir", str(workdir), "--"]
        return argv + list(cmd)
    if not network and _unshare_net_works():
        return ["unshare", "--net", "--", *cmd]
    return list(cmd)


def _preexec(limits: Limits) -> None:
    def mb(n: int) -> tuple[int, int]:
        return (n * 1024 * 1024, n * 1024 * 1024)

    if limits.cpu_s:
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s))
    if limits.memory_mb:
        resource.setrlimit(resource.RLIMIT_AS, mb(limits.memory_mb))
    if limits.file_size_mb:
        resource.setrlimit(resource.RLIMIT_FSIZE, mb(limits.file_size_mb))
    if limits.open_files:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))


def run(
    cmd: Sequence[str],
    workdir: Path,
    *,
    writable: Sequence[Path] = (),
    network: bool = False,
    env: Mapping[str, str] | None = None,
    limits: Limits | None = None,
    stdin: str | None = None,
) -> Result:
    """Run `cmd` in `workdir` under the sandbox; never raises for the command's own failure."""
    limits = limits or Limits()
    workdir = Path(workdir).resolve()
    full_env = {k: v for k, v in os.environ.items() if k in _PASS_ENV}
    real_home = Path.home()
    # Toolchains installed under the real home (rustup, cargo) stay reachable, read-only.
    for var, sub in (("RUSTUP_HOME", ".rustup"), ("CARGO_HOME", ".cargo")):
        if var not in full_env and (real_home / sub).is_dir():
            full_env[var] = str(real_home / sub)
    full_env["HOME"] = str(workdir)
    scratch = Path(tempfile.mkdtemp(prefix="moa-sandbox-"))
    full_env["TMPDIR"] = str(scratch)
    # Bytecode goes to the run's own scratch: a patch that edits a file within the same second and
    # to the same size (`> 63` -> `> 64`) would otherwise run the stale .pyc of the old text.
    full_env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    full_env.update(env or {})
    argv = _wrap(cmd, workdir, [scratch, *(Path(p).resolve() for p in writable)], network)
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=workdir,
        env=full_env,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
        preexec_fn=lambda: _preexec(limits),
    )
    timed_out = False
    try:
        out, _ = proc.communicate(input=stdin, timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Result(
        returncode=proc.returncode,
        output=out or "",
        seconds=time.monotonic() - start,
        timed_out=timed_out,
        isolation=isolation(network),
    )
