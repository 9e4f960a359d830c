"""Escape attempts through the real sandbox (bubblewrap, seccomp, rlimits, cgroups), run as root
and as an unprivileged user (created with useradd, entered with runuser). Each attempt asserts
that it was contained and by which mechanism.

The attempts are Python scripts run by the system Python inside the sandbox; each prints one
JSON line of what it observed (errno names, counts).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
DRIVER = Path(__file__).with_name("sandbox_driver.py")
SYSTEM_PYTHON = "/usr/bin/python3"
USER = "moa-sbx-test"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("bwrap") or not Path(SYSTEM_PYTHON).exists(),
    reason="needs root (to create the test user), bubblewrap and /usr/bin/python3",
)


def _ensure_user() -> pwd.struct_passwd:
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(USER)
    subprocess.run(["useradd", "--create-home", USER], check=True)
    return pwd.getpwnam(USER)


class Runner:
    """Runs a script in the sandbox as `who` ("root" or the test user); returns the result dict."""

    def __init__(self, who: str, workdir: Path) -> None:
        self.who, self.workdir = who, workdir
        self.home = Path(pwd.getpwnam(USER).pw_dir) if who == "user" else Path.home()

    def __call__(self, script: str, *args: str, **limits: Any) -> dict[str, Any]:
        request = {
            "cmd": [SYSTEM_PYTHON, "-c", script, *args],
            "workdir": str(self.workdir),
            "limits": {"timeout_s": 120, **limits},
        }
        prefix = (
            [shutil.which("runuser") or "/usr/sbin/runuser", "-u", USER, "--"] if self.who == "user" else []
        )
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(self.home), "LANG": "C.UTF-8"}
        proc = subprocess.run(
            [*prefix, SYSTEM_PYTHON, str(DRIVER), json.dumps(request)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
        return result

    def observed(self, script: str, *args: str, **limits: Any) -> dict[str, Any]:
        """The JSON line the script printed (the last line of its output)."""
        result = self(script, *args, **limits)
        lines = [ln for ln in result["output"].splitlines() if ln.startswith("{")]
        assert lines, result["output"]
        seen: dict[str, Any] = json.loads(lines[-1])
        return seen


@pytest.fixture(params=["root", "user"])
def sandboxed(request: pytest.FixtureRequest) -> Iterator[Runner]:
    account = _ensure_user()
    workdir = Path(tempfile.mkdtemp(prefix="moa-escape-"))
    workdir.chmod(0o755)
    if request.param == "user":
        os.chown(workdir, account.pw_uid, account.pw_gid)
    yield Runner(request.param, workdir)
    shutil.rmtree(workdir, ignore_errors=True)


PRELUDE = """
import ctypes, errno, json, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
def err(call):
    try:
        call()
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    return "ok"
def rc(value):
    return "ok" if value == 0 else errno.errorcode[ctypes.get_errno()]
def status(key):
    return next(l.split(":", 1)[1].strip() for l in open("/proc/self/status") if l.startswith(key + ":"))
"""


def test_remount_root_writable_is_refused(sandboxed: Runner) -> None:
    seen = sandboxed.observed(
        PRELUDE
        + """
MS_REMOUNT, MS_BIND = 32, 4096
print(json.dumps({
    "remount": rc(libc.mount(None, b"/usr", None, MS_REMOUNT | MS_BIND, None)),
    "mount_tmpfs": rc(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)),
    "unshare_user": rc(libc.unshare(0x10000000)),
    "write_usr": err(lambda: open("/usr/moa-escape", "w")),
    "cap_eff": status("CapEff"), "seccomp": status("Seccomp"), "no_new_privs": status("NoNewPrivs"),
}))
"""
    )
    # The mount calls fail with EPERM (seccomp, before any capability check); /usr stays read-only.
    assert seen["remount"] == seen["mount_tmpfs"] == seen["unshare_user"] == "EPERM", seen
    assert seen["write_usr"] == "EROFS"
    assert seen["cap_eff"] == "0000000000000000" and seen["seccomp"] == "2" and seen["no_new_privs"] == "1"
    assert not Path("/usr/moa-escape").exists()


def test_unmount_proc_is_refused_and_host_processes_stay_hidden(sandboxed: Runner) -> None:
    seen = sandboxed.observed(
        PRELUDE
        + """
print(json.dumps({
    "umount": rc(libc.umount2(b"/proc", 2)),
    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
}))
"""
    )
    assert seen["umount"] == "EPERM"
    # PID namespace: only the sandbox's own few processes exist (bwrap's init, the script).
    assert len(seen["pids"]) <= 3 and max(seen["pids"]) < 10, seen
    assert os.getpid() not in seen["pids"] or os.getpid() < 10


def test_writes_outside_the_work_folder_do_not_reach_the_host(sandboxed: Runner) -> None:
    outside = Path(tempfile.mkdtemp(prefix="moa-outside-"))
    outside.chmod(0o777)
    try:
        seen = sandboxed.observed(
            PRELUDE
            + """
target = sys.argv[1]
print(json.dumps({
    "host_tmp": err(lambda: open(target + "/escaped", "w")),
    "etc": err(lambda: open("/etc/moa-escape", "w")),
    "parent": err(lambda: open("../moa-escape-parent", "w").write("x")),
    "work": err(lambda: open("inside", "w").write("x")),
}))
""",
            str(outside),
        )
        assert seen["host_tmp"] == "ENOENT"  # /tmp inside is the sandbox's own tmpfs
        assert seen["etc"] == "EROFS"
        assert seen["work"] == "ok" and (sandboxed.workdir / "inside").exists()
        assert list(outside.iterdir()) == []
        assert not (sandboxed.workdir.parent / "moa-escape-parent").exists()
    finally:
        shutil.rmtree(outside)


def test_home_and_secrets_are_not_visible(sandboxed: Runner) -> None:
    secret = sandboxed.home / f"moa-secret-{uuid.uuid4().hex}"
    secret.write_text("token")
    try:
        seen = sandboxed.observed(
            PRELUDE
            + """
print(json.dumps({
    "home": err(lambda: open(sys.argv[1]).read()),
    "shadow": err(lambda: open("/etc/shadow").read()),
    "root": sorted(os.listdir("/root")) if os.path.isdir("/root") else [],
    "home_dirs": os.path.exists("/home"),
}))
""",
            str(secret),
        )
        assert seen["home"] == "ENOENT" and seen["shadow"] == "ENOENT"  # not mounted at all
        assert not seen["home_dirs"]
        assert all(name.startswith(".") or name == "go" for name in seen["root"]), seen  # toolchains only
    finally:
        secret.unlink()


@contextlib.contextmanager
def _listening(family: int, address: Any) -> Iterator[socket.socket]:
    server = socket.socket(family, socket.SOCK_STREAM)
    server.bind(address)
    server.listen(8)
    server.setblocking(False)
    try:
        yield server
    finally:
        server.close()


def _accepted(server: socket.socket) -> bool:
    try:
        server.accept()[0].close()
    except BlockingIOError:
        return False
    return True


def test_host_sockets_and_loopback_are_unreachable(sandboxed: Runner) -> None:
    folder = Path(tempfile.mkdtemp(prefix="moa-sock-"))
    folder.chmod(0o777)
    path = folder / "host.sock"
    abstract = f"\0moa-escape-{uuid.uuid4().hex}"
    try:
        with (
            _listening(socket.AF_UNIX, str(path)) as unix,
            _listening(socket.AF_UNIX, abstract) as abstract_server,
            _listening(socket.AF_INET, ("127.0.0.1", 0)) as tcp,
        ):
            path.chmod(0o777)
            port = tcp.getsockname()[1]
            seen = sandboxed.observed(
                PRELUDE
                + """
def connect(family, address):
    return err(lambda: socket.socket(family, socket.SOCK_STREAM).connect(address))
print(json.dumps({
    "unix": connect(socket.AF_UNIX, sys.argv[1]),
    "abstract": connect(socket.AF_UNIX, "\\0" + sys.argv[2]),
    "tcp": connect(socket.AF_INET, ("127.0.0.1", int(sys.argv[3]))),
    "docker": connect(socket.AF_UNIX, "/run/docker.sock"),
}))
""",
                str(path),
                abstract[1:],
                str(port),
            )
            assert seen["unix"] == "ENOENT" and seen["docker"] == "ENOENT"  # host /tmp, /run not mounted
            assert seen["abstract"] == "ECONNREFUSED"  # abstract names live in the network namespace
            assert seen["tcp"] in ("ENETUNREACH", "ECONNREFUSED")  # a loopback of its own, down
            assert not any(_accepted(s) for s in (unix, abstract_server, tcp))
    finally:
        shutil.rmtree(folder)


FORK_BOMB = """
import errno, json, os, time
forked, error = 0, None
while forked < 5000:
    try:
        pid = os.fork()
    except OSError as e:
        error = errno.errorcode[e.errno]
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    forked += 1
print(json.dumps({"forked": forked, "error": error}))
"""


def test_fork_bomb_is_capped(sandboxed: Runner) -> None:
    result = sandboxed(FORK_BOMB, tasks=64)
    seen = json.loads(result["output"].splitlines()[-1])
    assert seen["error"] == "EAGAIN" and seen["forked"] < 64, seen
    if sandboxed.who == "root":  # root is exempt from RLIMIT_NPROC: the pids cgroup stops it
        assert any(hit.startswith("tasks: pids cgroup") for hit in result["limits_hit"]), result
    # The sleeping children died with the sandbox instead of outliving it by a minute.
    assert result["seconds"] < 50


def test_30_gb_allocation_fails(sandboxed: Runner) -> None:
    seen = sandboxed.observed(
        """
import json, resource
try:
    block = bytearray(30 << 30)
    outcome = "allocated"
except MemoryError:
    outcome = "MemoryError"
print(json.dumps({"outcome": outcome, "rlimit_data": resource.getrlimit(resource.RLIMIT_DATA)[0]}))
""",
        memory_mb=512,
    )
    assert seen == {"outcome": "MemoryError", "rlimit_data": 512 << 20}


def test_memory_of_the_whole_tree_is_capped_by_the_cgroup(sandboxed: Runner) -> None:
    if sandboxed.who == "user":
        pytest.skip("an unprivileged user cannot create cgroups here; RLIMIT_DATA per process applies")
    result = sandboxed(
        """
import os, time
for _ in range(4):
    if os.fork() == 0:
        block = bytearray(150 << 20)  # touched: bytearray zero-fills
        time.sleep(5)
        os._exit(0)
os.wait(); os.wait(); os.wait(); os.wait()
""",
        memory_mb=256,
    )
    assert any(hit.startswith("memory: cgroup OOM kill") for hit in result["limits_hit"]), result


def test_filling_the_disk_stops_at_the_caps(sandboxed: Runner) -> None:
    seen = sandboxed.observed(
        PRELUDE
        + """
def fill(prefix, limit_mb, file_mb):
    written = 0
    try:
        while written < limit_mb:  # 20 GB in files of file_mb each
            with open(f"{prefix}{written}", "wb") as f:
                for _ in range(file_mb):
                    f.write(b"x" * (1 << 20)); f.flush(); written += 1
    except OSError as e:
        return written, errno.errorcode[e.errno]
    return written, "ok"
print(json.dumps({
    "tmp": fill(os.environ["TMPDIR"] + "/big", 20 << 10, 16),
    "shm": fill("/dev/shm/big", 20 << 10, 16),
    "dev": err(lambda: open("/dev/moa-big", "w")),
    "work": fill("big", 20 << 10, 20 << 10),
}))
""",
        scratch_mb=64,
        file_size_mb=32,
    )
    assert seen["tmp"][1] == "ENOSPC" and seen["tmp"][0] <= 64  # size-capped tmpfs
    assert seen["shm"][1] == "ENOSPC" and seen["shm"][0] <= 64
    assert seen["dev"] == "EROFS"
    assert seen["work"] == [32, "EFBIG"]  # RLIMIT_FSIZE (Python ignores SIGXFSZ, so EFBIG)


DAEMON = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(2)
        open("daemon-was-here", "w").write(sys.argv[1])
        time.sleep(600)
    os._exit(0)
"""


def _host_processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def test_a_daemon_does_not_outlive_the_run(sandboxed: Runner) -> None:
    marker = f"moa-daemon-{uuid.uuid4().hex}"
    result = sandboxed(DAEMON, marker)
    assert result["returncode"] == 0
    time.sleep(3)
    assert not (sandboxed.workdir / "daemon-was-here").exists()
    assert _host_processes_with(marker) == []


def test_without_bubblewrap_it_refuses_unless_unsafe(tmp_path: Path) -> None:
    env = {**os.environ, "MOA_BWRAP": "/nonexistent/bwrap", "PYTHONPATH": str(ROOT)}
    env.pop("MOA_UNSAFE_NO_SANDBOX", None)
    refuse = subprocess.run(
        [sys.executable, "-m", "moa.cli", "sandbox", "run", "--workdir", str(tmp_path), "--", "true"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert refuse.returncode != 0 and "--unsafe-no-sandbox" in refuse.stderr
    marker = f"moa-daemon-{uuid.uuid4().hex}"
    unsafe = subprocess.run(
        [
            sys.executable,
            "-m",
            "moa.cli",
            "--unsafe-no-sandbox",
            "sandbox",
            "run",
            "--workdir",
            str(tmp_path),
            "--",
            SYSTEM_PYTHON,
            "-c",
            DAEMON,
            marker,
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert unsafe.returncode == 0, unsafe.stderr
    assert "WARNING: --unsafe-no-sandbox" in unsafe.stderr
    time.sleep(3)  # even unsafe, as root the cgroup takes the daemon down
    assert _host_processes_with(marker) == [] and not (tmp_path / "daemon-was-here").exists()


@pytest.mark.parametrize(("kubernetes", "who"), [(True, "root"), (True, "user"), (False, "root")])
def test_in_a_stage_pod_the_pod_is_the_boundary(kubernetes: bool, who: str) -> None:
    """The operator's env makes a pod run untrusted code without bwrap (a restricted pod's seccomp
    refuses user namespaces), saying so; as a normal user (a pod's uid) even `unshare --net` is
    refused, and the command still runs. The same env outside Kubernetes changes nothing."""
    from moa.api.stages import SANDBOX_POD_ENV
    from moa.languages.sandbox import POD_ENV

    assert POD_ENV == SANDBOX_POD_ENV  # what the operator sets is what the sandbox reads
    _ensure_user()
    workdir = Path(tempfile.mkdtemp(prefix="moa-pod-"))  # pytest's tmp_path is root's alone
    workdir.chmod(0o777)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "MOA_BWRAP": "/nonexistent/bwrap", POD_ENV: "1"}
    if kubernetes:
        env["KUBERNETES_SERVICE_HOST"] = "10.96.0.1"
    prefix = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", USER, "--"] if who == "user" else []
    script = (
        "import sys; from pathlib import Path; from moa.languages import sandbox\n"
        "try:\n    r = sandbox.run(['true'], Path(sys.argv[1]))\n"
        "except sandbox.SandboxUnavailable as e:\n    sys.exit(f'refused: {e}')\n"
        "print(r.isolation); sys.exit(r.returncode)"
    )
    try:
        result = subprocess.run(
            [*prefix, SYSTEM_PYTHON, "-c", script, str(workdir)], capture_output=True, text=True, env=env
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if kubernetes:
        assert result.returncode == 0, result.stderr
        assert "pod: the stage's pod is the boundary" in result.stdout and "WARNING" not in result.stderr
    else:
        assert result.returncode != 0 and "--unsafe-no-sandbox" in result.stderr


def test_parent_killed_with_sigkill_leaves_nothing(tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    marker = f"moa-orphan-{token}"
    code = (  # the marker is assembled inside, so only the sandboxed process carries it
        "from pathlib import Path; from moa.languages import sandbox; "
        f"sandbox.run(['{SYSTEM_PYTHON}', '-c', 'import time; time.sleep(600)', 'moa-orphan-' + '{token}'],"
        f" Path('{tmp_path}'))"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 30
    while len(_host_processes_with(marker)) < 3 and time.monotonic() < deadline:  # bwrap x2, python
        time.sleep(0.1)
    assert len(_host_processes_with(marker)) == 3
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while _host_processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _host_processes_with(marker) == []  # bwrap --die-with-parent took the tree down
    from moa.languages import cgroups

    stale = [p for ctrl in cgroups._own_paths(cgroups.ROOT).values() for p in ctrl.glob(f"*{parent.pid}-*")]
    assert stale, "expected the killed run's cgroup to be left for the next start to clean"
    assert cgroups.clean_stale() >= 1
    assert not any(p.exists() for p in stale)


def test_ca_bundles_reach_only_runs_with_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip, cargo, npm each read their own CA variable; behind a TLS-inspecting proxy a fetch's
    installs need them, and a run without network has no use for them."""
    from moa.languages import sandbox

    monkeypatch.setenv("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
    online = sandbox.run(["env"], tmp_path, network=True)
    offline = sandbox.run(["env"], tmp_path)
    assert "PIP_CERT=/etc/ssl/certs/ca-certificates.crt" in online.output
    assert "PIP_CERT" not in offline.output
