"""Run untrusted code (mutated repos, model-written patches) so that it holds whoever runs moa,
root included: no network, limits on memory, tasks, files and disk, a timeout, writes only inside
its work folder, and nothing left running or lying around afterwards.

Layers (docs/security.md, "Local sandbox", says what each one stops):
- bubblewrap with a new user namespace (uid/gid 1000 inside), all capabilities dropped, no new
  privileges, user namespaces disabled inside, and new PID, IPC, UTS, cgroup and network
  namespaces. Its mount namespace belongs to the new user namespace, so the read-only binds of
  the host are locked: even a capability-holding process there could not remount them.
- a seccomp filter (moa.languages.seccomp) refusing mount, unshare, ptrace, keyctl and friends.
- a file system built from an allow list: the system folders, the toolchains (PATH entries and
  toolchain homes, this Python, moa's own package, the moa cache) read-only, the work folder and
  the listed caches writable, a size-capped tmpfs on /tmp (TMPDIR) and /dev/shm; no $HOME, no
  /root, /home, /run, /var, no host sockets, and only harmless files of /etc.
- rlimits per process (data segment, tasks, open files, file size, CPU time) and, where the
  cgroup hierarchy is writable, a cgroup capping the whole tree's memory, tasks and CPU.
- at the end every descendant is killed (the PID namespace dies with its first process, then the
  cgroup is emptied); the scratch lives in the sandbox's tmpfs, so even a SIGKILLed parent
  leaves none on disk, and stale cgroups of dead runs are removed at the next start.

Without a working bubblewrap the sandbox refuses to run anything (`SandboxUnavailable`) unless
the user passed `--unsafe-no-sandbox` (env MOA_UNSAFE_NO_SANDBOX=1), which is said loudly on
every run's `isolation` line and once on stderr.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from moa.languages import cgroups, seccomp

UNSAFE_ENV = "MOA_UNSAFE_NO_SANDBOX"
# Set by the operator on stage pods: the pod itself is the sandbox (non-root, no capabilities,
# RuntimeDefault seccomp, read-only root, deny-all NetworkPolicy). A restricted pod's seccomp
# profile refuses the user namespace bubblewrap needs, so there moa runs the code directly.
# The same name as moa.api.stages.SANDBOX_POD_ENV (a test holds them equal): this module imports
# only the standard library, so the escape tests can drive it under the system Python.
POD_ENV = "MOA_SANDBOX_POD"
POD_BOUNDARY = (
    "pod: the stage's pod is the boundary (non-root, no capabilities, RuntimeDefault seccomp, "
    "read-only root, deny-all NetworkPolicy)"
)
BWRAP_ENV = "MOA_BWRAP"  # which bubblewrap binary (tests point it at nothing to see the refusal)
SANDBOX_UID = 1000
SCRATCH = Path("/tmp")  # inside the sandbox: the size-capped tmpfs
OUTPUT_CAP = 8 << 20  # keep at most the last 8 MiB of a run's output

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
# Extra CA bundles, each tool reading its own variable (pip and requests, curl, git, Node, cargo):
# passed to runs with network only, where a TLS-inspecting proxy makes them necessary.
_CA_ENV = (
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS",
    "CARGO_HTTP_CAINFO",
)
# Toolchain homes (env var, default under $HOME) shown read-only when they exist.
_TOOL_HOMES = (
    ("RUSTUP_HOME", ".rustup"),
    ("CARGO_HOME", ".cargo"),
    ("GOPATH", "go"),
    ("PYENV_ROOT", ".pyenv"),
    ("GOROOT", None),
    ("JAVA_HOME", None),
    ("NODE_PATH", None),
)
_SYSTEM_DIRS = ("/usr", "/opt")
_SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# /etc is an allow list: no shadow, no credentials, no host configuration beyond these.
_ETC = [
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "ssl",
    "pki",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "nsswitch.conf",
    "passwd",
    "group",
    "hosts",
    "host.conf",
    "resolv.conf",
    "protocols",
    "services",
    "mime.types",
    "os-release",
    "debian_version",
    "terminfo",
]
_ETC_GLOBS = ("java-*", "python3*", "node*")
_ETC_NETWORK = ("pip.conf", "npmrc", "gitconfig")


def _env_number(name: str, default: float) -> float:
    with contextlib.suppress(ValueError):
        return float(os.environ.get(name, default))
    return default


@dataclass(frozen=True)
class Limits:
    """Per-run limits. Memory and CPU default to the spec's `resources.sandbox` (the stage exports
    them as MOA_SANDBOX_MEMORY_MB / MOA_SANDBOX_CPUS; 8Gi and 2 CPUs, the spec defaults, otherwise)."""

    timeout_s: float = 600.0
    cpu_s: int | None = None  # RLIMIT_CPU per process
    # Whole tree with cgroups; RLIMIT_DATA (not RLIMIT_AS: Go and Node reserve huge virtual
    # ranges they never touch) per process.
    memory_mb: int | None = field(default_factory=lambda: int(_env_number("MOA_SANDBOX_MEMORY_MB", 8192)))
    cpus: float | None = field(default_factory=lambda: _env_number("MOA_SANDBOX_CPUS", 2.0))
    tasks: int | None = 1024  # processes and threads: pids cgroup, and RLIMIT_NPROC
    file_size_mb: int | None = 1024  # RLIMIT_FSIZE: no single file larger than this
    open_files: int | None = 4096
    scratch_mb: int | None = 2048  # the tmpfs on /tmp and on /dev/shm


@dataclass
class Result:
    returncode: int
    output: str  # stdout and stderr interleaved (the last OUTPUT_CAP bytes)
    seconds: float
    timed_out: bool = False
    isolation: str = ""
    limits_hit: list[str] = field(default_factory=list)  # e.g. "memory: cgroup OOM kill"

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


class SandboxUnavailable(RuntimeError):
    """No working bubblewrap, and the user did not accept running untrusted code without one."""


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
            readonly=self.readonly_extra,
            network=self.network,
            env=env,
            limits=limits or self.limits,
            stdin=stdin,
        )


# ----------------------------------------------------------------------------- what is available


def _bwrap() -> str | None:
    return shutil.which(os.environ.get(BWRAP_ENV, "bwrap"))


@cache
def _bwrap_problem(bwrap: str | None) -> str | None:
    """None when bubblewrap can build the sandbox here, else why not."""
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    probe = subprocess.run(
        [
            bwrap,
            "--unshare-user",
            "--uid",
            str(SANDBOX_UID),
            "--disable-userns",
            "--unshare-pid",
            "--unshare-net",
            "--cap-drop",
            "ALL",
            "--ro-bind",
            "/",
            "/",
            "true",
        ],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return f"bwrap cannot create a user namespace here: {probe.stderr.strip()[:300]}"
    return None


@cache
def _can_unshare_net() -> bool:
    """Whether `unshare --net` works here (it needs CAP_SYS_ADMIN: root on a host, never in a
    restricted pod, where deny-all NetworkPolicy keeps the network away instead)."""
    return (
        shutil.which("unshare") is not None
        and subprocess.run(["unshare", "--net", "--", "true"], capture_output=True).returncode == 0
    )


def unsafe_allowed() -> bool:
    return os.environ.get(UNSAFE_ENV, "") not in ("", "0")


def in_stage_pod() -> bool:
    """A stage pod the operator made (its env says so, and Kubernetes' own env is there)."""
    return os.environ.get(POD_ENV, "") not in ("", "0") and "KUBERNETES_SERVICE_HOST" in os.environ


def isolation(network: bool = False) -> str:
    """A one-line description of the isolation `run` applies on this machine."""
    problem = _bwrap_problem(_bwrap())
    if problem is None:
        return (
            f"bwrap: user namespace (uid {SANDBOX_UID}), no capabilities, seccomp, allow-listed "
            "read-only toolchains, writable work folder, capped tmpfs scratch, pid namespace, "
            + ("network allowed" if network else "no network")
        )
    if in_stage_pod():
        return f"{POD_BOUNDARY}; no bwrap inside it ({problem})"
    return f"NONE (--unsafe-no-sandbox): {problem}; untrusted code runs with your privileges"


def _require_sandbox() -> str | None:
    """The bwrap binary to use; None in unsafe mode; raises when neither is allowed."""
    bwrap = _bwrap()
    problem = _bwrap_problem(bwrap)
    if problem is None:
        return bwrap
    if in_stage_pod():
        return None
    if not unsafe_allowed():
        raise SandboxUnavailable(
            f"refusing to run untrusted code: {problem}. Install bubblewrap (apt-get install "
            "bubblewrap) with user namespaces enabled, or pass --unsafe-no-sandbox to run it "
            "with your own privileges"
        )
    _warn_unsafe_once(problem)
    return None


@cache
def _warn_unsafe_once(problem: str) -> None:
    print(
        f"moa: WARNING: --unsafe-no-sandbox: {problem}. Untrusted code (mutants, model patches) "
        "runs with YOUR privileges, file system and network.",
        file=sys.stderr,
    )


# ----------------------------------------------------------------------------- file system view


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


@cache
def toolchain_paths() -> tuple[Path, ...]:
    """Folders shown read-only besides the system ones: toolchains, this Python, moa, its cache."""
    from moa.languages.tools import cache_dir  # tools imports this module

    home = _home()
    found: list[Path] = []
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        path = Path(entry).resolve()
        if not path.is_absolute() or not path.exists() or str(path).startswith(_SYSTEM_DIRS):
            continue
        # A tool under $HOME (~/.cargo/bin) is shown with its whole home (~/.cargo), not $HOME.
        found.append(home / path.relative_to(home).parts[0] if path.is_relative_to(home) else path)
    for var, default in _TOOL_HOMES:
        value = os.environ.get(var) or (str(home / default) if default else "")
        found += [Path(p) for p in value.split(os.pathsep) if p]
    found += [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parents[1]]
    found += [Path(__file__).resolve().parents[1], cache_dir()]
    # A symlinked folder (a worktree's .venv) is shown at both its own path and its target's.
    unique = {
        q for p in found if p.is_absolute() and p.exists() for q in (p.resolve(), Path(os.path.abspath(p)))
    }
    system = (*_SYSTEM_DIRS, *_SYSTEM_LINKS)
    return tuple(sorted(p for p in unique if p not in (Path("/"), home) and not str(p).startswith(system)))


def _mount_args(
    workdir: Path, writable: Sequence[Path], readonly: Sequence[Path], network: bool, scratch_mb: int | None
) -> list[str]:
    argv: list[str] = []
    for folder in _SYSTEM_DIRS:
        argv += ["--ro-bind-try", folder, folder]
    for link in _SYSTEM_LINKS:
        if os.path.islink(link):
            argv += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            argv += ["--ro-bind", link, link]
    etc = [Path("/etc", name) for name in _ETC] + [p for g in _ETC_GLOBS for p in Path("/etc").glob(g)]
    # Package-manager settings (certificates, mirrors; possibly an index token) only with network.
    etc += [Path("/etc", name) for name in _ETC_NETWORK] if network else []
    for path in etc:
        argv += ["--ro-bind-try", str(path), str(path)]
    size = ["--size", str(scratch_mb << 20)] if scratch_mb else []
    argv += ["--proc", "/proc", "--dev", "/dev", *size, "--tmpfs", "/dev/shm", *size, "--tmpfs", str(SCRATCH)]
    rw = {p.resolve() for p in (workdir, *writable)}
    ro = {p for p in (*toolchain_paths(), *(Path(os.path.abspath(x)) for x in readonly))}
    ro = {p for p in ro if not any(p.is_relative_to(w) for w in rw)}  # writable wins
    # Parents before children, so a writable cache inside a read-only toolchain home stays writable.
    for path in sorted(rw | ro, key=lambda p: (len(p.parts), str(p))):
        if path in rw:
            path.mkdir(parents=True, exist_ok=True)
            argv += ["--bind", str(path), str(path)]
        else:
            argv += ["--ro-bind-try", str(path.resolve()), str(path)]
    return argv


def _bwrap_argv(bwrap: str, seccomp_fd: int, workdir: Path, network: bool, mounts: list[str]) -> list[str]:
    argv = [bwrap, "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    argv += ["--disable-userns", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    argv += [] if network else ["--unshare-net"]
    argv += ["--hostname", "moa-sandbox", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    argv += [
        "--seccomp",
        str(seccomp_fd),
        *mounts,
        "--remount-ro",
        "/",
        "--remount-ro",
        "/dev",
        "--chdir",
        str(workdir),
        "--",
    ]
    return argv


# ----------------------------------------------------------------------------- the run


_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_PDEATHSIG = 1


def _child_setup(limits: Limits, group: cgroups.Cgroup | None) -> None:
    """Runs in the child between fork and exec: limits, no new privileges, into the cgroup."""

    def mb(n: int) -> tuple[int, int]:
        return (n << 20, n << 20)

    if limits.cpu_s:
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s))
    if limits.memory_mb:
        resource.setrlimit(resource.RLIMIT_DATA, mb(limits.memory_mb))
    if limits.file_size_mb:
        resource.setrlimit(resource.RLIMIT_FSIZE, mb(limits.file_size_mb))
    if limits.open_files:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    if limits.tasks:
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.tasks, limits.tasks))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    # Die with us even before bwrap's own --die-with-parent is in place (a SIGKILLed moa then
    # leaves nothing running, whatever moment it died at).
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if group is not None:
        group.enter()


_run_counter = iter(range(1 << 62))
_stale_cleaned = threading.Event()


def clean_stale() -> int:
    """Remove what runs killed with SIGKILL left behind: cgroups, unsafe-mode scratch folders."""
    return cgroups.clean_stale() + remove_orphaned_scratch("moa-sandbox-")


def remove_orphaned_scratch(prefix: str) -> int:
    """Remove the folders `{TMPDIR}/{prefix}{pid}-*` whose process is gone: it was SIGKILLed
    before it could remove its own scratch. Returns how many were removed."""
    removed = 0
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        owner = folder.name[len(prefix) :].split("-")[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


@contextlib.contextmanager
def _seccomp_fd() -> Iterator[int]:
    read, write = os.pipe()
    try:
        os.write(write, seccomp.program())
        os.close(write)
        yield read
    finally:
        os.close(read)


def _pump(stream: object, into: deque[bytes]) -> None:
    """Keep the tail of a stream: a command printing gigabytes must not fill our memory."""
    kept = 0
    for chunk in iter(lambda: stream.read1(1 << 16), b""):  # type: ignore[attr-defined]
        into.append(chunk)
        kept += len(chunk)
        while kept - len(into[0]) >= OUTPUT_CAP:
            kept -= len(into.popleft())


def run(
    cmd: Sequence[str],
    workdir: Path,
    *,
    writable: Sequence[Path] = (),
    readonly: Sequence[Path] = (),
    network: bool = False,
    env: Mapping[str, str] | None = None,
    limits: Limits | None = None,
    stdin: str | None = None,
) -> Result:
    """Run `cmd` in `workdir` under the sandbox; never raises for the command's own failure
    (raises `SandboxUnavailable` when there is no sandbox and unsafe mode was not chosen)."""
    limits = limits or Limits()
    workdir = Path(workdir).resolve()
    bwrap = _require_sandbox()
    if not _stale_cleaned.is_set():
        _stale_cleaned.set()
        clean_stale()
    tag = str(next(_run_counter))
    passed = _PASS_ENV + (_CA_ENV if network else ())
    full_env = {k: v for k, v in os.environ.items() if k in passed}
    home = _home()
    # Toolchains installed under the real home (rustup, cargo) stay reachable, read-only.
    for var, sub in (("RUSTUP_HOME", ".rustup"), ("CARGO_HOME", ".cargo")):
        if var not in full_env and (home / sub).is_dir():
            full_env[var] = str(home / sub)
    host_scratch = None if bwrap else Path(tempfile.mkdtemp(prefix=f"moa-sandbox-{os.getpid()}-"))
    scratch = host_scratch or SCRATCH
    full_env |= {"HOME": str(workdir), "TMPDIR": str(scratch), "USER": "sandbox"}
    # Bytecode goes to the run's own scratch: a patch that edits a file within the same second and
    # to the same size (`> 63` -> `> 64`) would otherwise run the stale .pyc of the old text.
    full_env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    full_env.update(env or {})
    group, group_note = cgroups.Cgroup.create(
        tag, memory_mb=limits.memory_mb, tasks=limits.tasks, cpus=limits.cpus
    )
    start = time.monotonic()
    timed_out = False
    tail: deque[bytes] = deque()
    with _seccomp_fd() as fd:
        if bwrap:
            mounts = _mount_args(
                workdir, [Path(p) for p in writable], [Path(p) for p in readonly], network, limits.scratch_mb
            )
            argv = _bwrap_argv(bwrap, fd, workdir, network, mounts) + list(cmd)
        else:
            argv = ["unshare", "--net", "--", *cmd] if not network and _can_unshare_net() else list(cmd)
        try:
            proc = subprocess.Popen(
                argv,
                cwd=workdir,
                env=full_env,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(fd,),
                preexec_fn=lambda: _child_setup(limits, group),
            )
        except BaseException:
            if group:
                group.remove()
            raise
        reader = threading.Thread(target=_pump, args=(proc.stdout, tail), daemon=True)
        reader.start()
        try:
            if stdin is not None and proc.stdin:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.write(stdin.encode("utf-8", "surrogateescape"))
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
            proc.wait(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            # Every descendant goes: the session, then the cgroup (a daemon may have left both).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            hits = _limits_hit(group, proc.returncode)
            if group:
                group.remove()
            reader.join(timeout=10)
            if host_scratch:
                shutil.rmtree(host_scratch, ignore_errors=True)
    note = isolation(network) + f"; {group_note}"
    return Result(
        returncode=proc.returncode,
        output=b"".join(tail).decode("utf-8", "replace"),
        seconds=time.monotonic() - start,
        timed_out=timed_out,
        isolation=note,
        limits_hit=hits + (["time: wall-clock timeout"] if timed_out else []),
    )


def _limits_hit(group: cgroups.Cgroup | None, returncode: int) -> list[str]:
    hits = []
    if group and group.oom_kills():
        hits.append(f"memory: cgroup OOM kill ({group.oom_kills()})")
    if group and group.task_limit_hits():
        hits.append(f"tasks: pids cgroup refused {group.task_limit_hits()} forks")
    if returncode in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
        hits.append("file size: RLIMIT_FSIZE (SIGXFSZ)")
    if returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        hits.append("cpu time: RLIMIT_CPU (SIGXCPU)")
    return hits
