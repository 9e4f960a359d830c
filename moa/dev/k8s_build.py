"""Kubernetes component binaries for the local control plane, built from their Go modules.

No registry here ships kube-apiserver binaries and there is no Docker, but the Go module proxy
is reachable, so every component is compiled once with `go build` from its published module and
cached under ``~/.cache/moa/k8s/<KUBERNETES_VERSION>/bin``. A file lock keeps two processes (two
pytest sessions, a CI retry) from building at the same time; the second one waits and reuses.

k8s.io/kubernetes cannot be built as a plain dependency: its go.mod points every staging module
(k8s.io/api, client-go, ...) at ``./staging/...``, which Go ignores outside the main module. A
small wrapper module replaces each of them with its published ``v0.<minor>.<patch>`` tag.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.6.8"
KWOK_VERSION = "v0.8.0"

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok")

# The machine's own `kubectl` is an odd "dispatcher" build and may not match the server, so
# kubectl is never taken from PATH: it always comes from MOA_K8S_BIN or our own build.
NEVER_FROM_PATH = frozenset({"kubectl"})
GO_FALLBACK = Path("/usr/local/go/bin/go")  # where the official tarball installs, often not on PATH


class ToolchainMissing(RuntimeError):
    """Binaries are absent and there is no Go toolchain to build them."""


@dataclass(frozen=True)
class GoModule:
    """One Go module and the binaries it yields (binary name -> package path)."""

    path: str
    version: str
    binaries: dict[str, str]
    ldflags: str = "-s -w"
    pin_staging: bool = False


def _kubernetes_ldflags(version: str) -> str:
    """Stamp the version the way hack/lib/version.sh does, so clients see a real server version."""
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


MODULES = (
    GoModule(
        "k8s.io/kubernetes",
        KUBERNETES_VERSION,
        {
            name: f"k8s.io/kubernetes/cmd/{name}"
            for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
        },
        ldflags=_kubernetes_ldflags(KUBERNETES_VERSION),
        pin_staging=True,
    ),
    # server/v3 is the module whose root package is the `etcd` main.
    GoModule("go.etcd.io/etcd/server/v3", ETCD_VERSION, {"etcd": "go.etcd.io/etcd/server/v3"}),
    GoModule("sigs.k8s.io/kwok", KWOK_VERSION, {"kwok": "sigs.k8s.io/kwok/cmd/kwok"}),
)


def cache_root() -> Path:
    return Path(os.environ.get("MOA_CACHE", Path.home() / ".cache" / "moa"))


def bin_dir() -> Path:
    return cache_root() / "k8s" / KUBERNETES_VERSION / "bin"


def find_go() -> str:
    go = shutil.which("go") or (str(GO_FALLBACK) if GO_FALLBACK.exists() else None)
    if go is None:
        raise ToolchainMissing(
            "the Go toolchain is missing: the local control plane builds kube-apiserver, etcd and kwok "
            "from their Go modules. Install Go >= 1.26 (https://go.dev/dl), or point MOA_K8S_BIN at a "
            f"directory holding {', '.join(BINARIES)}."
        )
    return go


def go_env() -> dict[str, str]:
    """Build and module caches live under ~/.cache/moa/go so CI reruns reuse them."""
    go_cache = cache_root() / "go"
    env = dict(os.environ)
    env.update(
        GOCACHE=str(go_cache / "build"),
        GOMODCACHE=str(go_cache / "mod"),
        GOFLAGS="-mod=mod -buildvcs=false",
        GOTOOLCHAIN="local",
        CGO_ENABLED="0",
    )
    return env


def module_dir(module: str, version: str) -> Path:
    """Download MODULE@VERSION into the module cache (once) and return its folder."""
    # Go's module cache layout; upper-case letters are escaped as "!" + lower-case.
    cached = (
        Path(go_env()["GOMODCACHE"]) / f"{re.sub('([A-Z])', lambda m: '!' + m[1].lower(), module)}@{version}"
    )
    if cached.is_dir():
        return cached
    out = subprocess.run(
        [find_go(), "mod", "download", "-json", f"{module}@{version}"],
        env=go_env(),
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
    )
    info = json.loads(out.stdout or "{}")
    if out.returncode != 0 or "Dir" not in info:
        raise RuntimeError(
            f"go mod download {module}@{version} failed: {info.get('Error') or out.stderr.strip()}"
        )
    return Path(info["Dir"])


def staging_pins(kubernetes_dir: Path, version: str) -> dict[str, str]:
    """k8s.io/* modules that k8s.io/kubernetes requires from ./staging, pinned to v0.<minor>.<patch>."""
    gomod = (kubernetes_dir / "go.mod").read_text()
    staged = set(re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/", gomod, flags=re.M))
    required = set(re.findall(r"^\s*(k8s\.io/[\w.-]+) v0\.0\.0\b", gomod, flags=re.M))
    published = "v0." + version.lstrip("v").split(".", 1)[1]
    return {mod: published for mod in sorted(staged & required)}


def write_wrapper(module: GoModule, workdir: Path) -> None:
    """A throwaway main module that requires MODULE (and pins staging modules when needed)."""
    lines = [f"module moa.dev/build/{module.path.replace('/', '-')}", "", "go 1.26", ""]
    lines.append(f"require {module.path} {module.version}")
    pins = staging_pins(module_dir(module.path, module.version), module.version) if module.pin_staging else {}
    if pins:
        lines += ["", "replace ("] + [f"\t{mod} => {mod} {ver}" for mod, ver in pins.items()] + [")"]
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "go.mod").write_text("\n".join(lines) + "\n")


@contextmanager
def file_lock(path: Path, say: Callable[[str], None], waiting: str):
    """Exclusive fcntl lock on PATH; says WAITING once when another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"{waiting}; waiting for {path}")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def locate(name: str) -> Path | None:
    """An existing binary: MOA_K8S_BIN, then our cache, then PATH (never for kubectl)."""
    candidates = []
    if os.environ.get("MOA_K8S_BIN"):
        candidates.append(Path(os.environ["MOA_K8S_BIN"]) / name)
    candidates.append(bin_dir() / name)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = None if name in NEVER_FROM_PATH else shutil.which(name)
    return Path(on_path) if on_path else None


def build(
    module: GoModule, names: Iterable[str], say: Callable[[str], None], out_dir: Path | None = None
) -> None:
    """Compile NAMES of MODULE into OUT_DIR (default bin_dir()); the wrapper module lives in
    OUT_DIR/../src; each binary is renamed into place when complete."""
    go = find_go()
    out_dir = out_dir or bin_dir()
    workdir = out_dir.parent / "src" / module.path.replace("/", "-")
    write_wrapper(module, workdir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        say(
            f"building {name} from {module.path}@{module.version} (first time only; several minutes on 2 cores)"
        )
        started = time.monotonic()
        partial = out_dir / f".{name}.partial"
        cmd = [
            go,
            "build",
            "-trimpath",
            "-ldflags",
            module.ldflags,
            "-o",
            str(partial),
            module.binaries[name],
        ]
        result = subprocess.run(cmd, cwd=workdir, env=go_env(), capture_output=True, text=True)
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            raise RuntimeError(f"`go build {module.binaries[name]}` failed:\n{result.stderr[-4000:]}")
        partial.rename(out_dir / name)
        say(f"built {name} in {time.monotonic() - started:.0f} s")


def ensure_binaries(names: Iterable[str] = BINARIES, say: Callable[[str], None] = print) -> dict[str, Path]:
    """Paths of the requested binaries, building the missing ones once (under a file lock)."""
    names = list(names)
    found = {name: locate(name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        lock = cache_root() / "k8s" / KUBERNETES_VERSION / "build.lock"
        with file_lock(lock, say, "another process is building the Kubernetes binaries"):
            for module in MODULES:
                todo = [name for name in missing if name in module.binaries and locate(name) is None]
                if todo:
                    build(module, todo, say)
        found = {name: locate(name) for name in names}
    return {name: path for name, path in found.items() if path is not None}
