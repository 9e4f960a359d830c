"""Our version-matched kubectl, and CRD installation through it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from moa.dev import upstream_crds


def run_kubectl(
    kubectl: Path, kubeconfig: Path, *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(kubectl), f"--kubeconfig={kubeconfig}", *args], input=input, capture_output=True, text=True
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def apply_crds(kubectl: Path, kubeconfig: Path, files: list[Path]) -> None:
    """Server-side apply (big CRDs exceed the client-side last-applied annotation) and wait Established."""
    if not files:
        return
    args = [arg for f in files for arg in ("-f", str(f))]
    out = run_kubectl(kubectl, kubeconfig, "apply", "--server-side", "--force-conflicts", "-o", "name", *args)
    names = out.stdout.split()
    run_kubectl(kubectl, kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", *names)


def install_upstream_crds(kubectl: Path, kubeconfig: Path) -> None:
    """The Kubeflow/JobSet CRDs, unless all are there already (applying them unchanged costs seconds)."""
    present = run_kubectl(kubectl, kubeconfig, "get", "crd", *upstream_crds.NAMES, "-o", "name", check=False)
    if present.returncode != 0 or len(present.stdout.split()) != len(upstream_crds.NAMES):
        apply_crds(kubectl, kubeconfig, upstream_crds.crd_files())
