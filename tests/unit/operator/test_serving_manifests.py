"""manifests/serving: read-only RBAC on Adapters, readiness on loaded adapters, hardened pod."""

from __future__ import annotations

from pathlib import Path

import yaml

from moa.operator.serving_manifests import serving

MANIFESTS = Path(__file__).resolve().parents[3] / "manifests"


def by_kind() -> dict[str, dict]:  # type: ignore[type-arg]
    return {o["kind"]: o for o in serving()}


def test_rbac_reads_adapters_and_nothing_else() -> None:
    (rule,) = by_kind()["Role"]["rules"]
    assert rule == {"apiGroups": ["moa.dev"], "resources": ["adapters"], "verbs": ["get", "list", "watch"]}


def test_pod_is_non_root_read_only_and_ready_only_with_an_adapter() -> None:
    pod = by_kind()["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"  # 503 until an adapter is loaded
    assert container["args"][:3] == ["moa", "serve", "--cluster"]
    assert {"name": "artifacts", "mountPath": "/artifacts", "readOnly": True} in container["volumeMounts"]
    service = by_kind()["Service"]
    assert service["spec"]["selector"] == by_kind()["Deployment"]["spec"]["selector"]["matchLabels"]


def test_overlays_include_serving() -> None:
    for overlay in ("dev", "production"):
        doc = yaml.safe_load((MANIFESTS / "overlays" / overlay / "kustomization.yaml").read_text())
        assert "../../serving" in doc["resources"]
    assert (MANIFESTS / "serving" / "kustomization.yaml").exists()
