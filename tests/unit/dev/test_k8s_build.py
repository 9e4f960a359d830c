"""The pure parts of the Kubernetes binary build: staging pins, binary lookup, missing toolchain."""

from __future__ import annotations

from pathlib import Path

import pytest

from moa.dev import k8s_build

GO_MOD = """module k8s.io/kubernetes

require (
\tgithub.com/spf13/cobra v1.10.0
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/sample-controller => ./staging/src/k8s.io/sample-controller
)
"""


def test_staging_pins_map_required_staging_modules_to_published_tags(tmp_path: Path):
    (tmp_path / "go.mod").write_text(GO_MOD)
    pins = k8s_build.staging_pins(tmp_path, "v1.37.2")
    # sample-controller is staged but not required, so it needs no (possibly unpublished) pin.
    assert pins == {"k8s.io/api": "v0.37.2", "k8s.io/client-go": "v0.37.2"}


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_binaries_come_from_moa_k8s_bin_then_cache_then_path_but_kubectl_never_from_path(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("MOA_CACHE", str(tmp_path / "cache"))
    on_path = tmp_path / "path"
    monkeypatch.setenv("PATH", str(on_path))
    executable(on_path / "kubectl")
    executable(on_path / "etcd")
    assert k8s_build.locate("kubectl") is None
    assert k8s_build.locate("etcd") == on_path / "etcd"

    cached = executable(k8s_build.bin_dir() / "etcd")
    assert k8s_build.locate("etcd") == cached

    monkeypatch.setenv("MOA_K8S_BIN", str(tmp_path / "given"))
    given = executable(tmp_path / "given" / "etcd")
    assert k8s_build.locate("etcd") == given


def test_missing_go_toolchain_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MOA_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(k8s_build, "GO_FALLBACK", tmp_path / "no-go")
    with pytest.raises(k8s_build.ToolchainMissing, match=r"Go toolchain is missing.*MOA_K8S_BIN"):
        k8s_build.ensure_binaries(["kube-apiserver"], say=lambda _: None)
