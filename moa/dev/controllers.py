"""Kueue, JobSet, Kubeflow Trainer v2 and the Kubeflow training-operator, built from their Go modules.

Like the control plane itself (k8s_build.py), each controller is compiled once from its published
Go module and cached under ``~/.cache/moa/controllers/<module>@<version>/bin``; the versions are
the newest the Go module proxy serves here (`go list -m -versions`), except JobSet, pinned to the
version Trainer v2 requires in its go.mod (the proxy lists no JobSet versions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from moa.dev.k8s_build import GoModule, build, cache_root, file_lock

KUEUE = GoModule("sigs.k8s.io/kueue", "v0.17.0", {"kueue": "sigs.k8s.io/kueue/cmd/kueue"})
JOBSET = GoModule("sigs.k8s.io/jobset", "v0.8.2", {"jobset": "sigs.k8s.io/jobset"})
TRAINER = GoModule(
    "github.com/kubeflow/trainer/v2",
    "v2.0.0",
    {"trainer": "github.com/kubeflow/trainer/v2/cmd/trainer-controller-manager"},
)
TRAINING_OPERATOR = GoModule(
    "github.com/kubeflow/training-operator",
    "v1.8.1",
    {"training-operator": "github.com/kubeflow/training-operator/cmd/training-operator.v1"},
)
MODULES = {"kueue": KUEUE, "jobset": JOBSET, "trainer": TRAINER, "training-operator": TRAINING_OPERATOR}


def home(module: GoModule) -> Path:
    return cache_root() / "controllers" / f"{module.path.replace('/', '-')}@{module.version}"


def binary(name: str) -> Path:
    return home(MODULES[name]) / "bin" / name


def ensure_controllers(names: Iterable[str], say: Callable[[str], None] = print) -> dict[str, Path]:
    """Paths of the named controller binaries, building the missing ones once (under a file lock)."""
    unknown = sorted(set(names) - set(MODULES))
    if unknown:
        raise ValueError(f"unknown controller(s) {', '.join(unknown)}; known: {', '.join(MODULES)}")
    for name in names:
        if not binary(name).is_file():
            module = MODULES[name]
            with file_lock(home(module) / "build.lock", say, f"another process is building {name}"):
                if not binary(name).is_file():
                    build(module, [name], say, out_dir=home(module) / "bin")
    return {name: binary(name) for name in names}
