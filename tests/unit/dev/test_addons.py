"""Addons: which upstream webhooks are registered, and how they reach a loopback server."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from moa.dev import addons


def hook(name: str, path: str, group: str, resource: str) -> dict[str, Any]:
    """One webhook as kubebuilder writes it: served by a Service."""
    return {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "clientConfig": {"service": {"name": "webhook-service", "namespace": "system", "path": path}},
        "failurePolicy": "Fail",
        "sideEffects": "None",
        "rules": [
            {"apiGroups": [group], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": [resource]}
        ],
    }


def configuration(kind: str, name: str, *hooks: dict[str, Any]) -> dict[str, Any]:
    api = "admissionregistration.k8s.io/v1"
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name}, "webhooks": list(hooks)}


MANIFESTS = yaml.safe_dump_all(
    [
        configuration(
            "MutatingWebhookConfiguration",
            "mutating-webhook-configuration",
            hook("mjob.kb.io", "/mutate-batch-v1-job", "batch", "jobs"),
            hook("mpod.kb.io", "/mutate--v1-pod", "", "pods"),
        ),
        configuration(
            "ValidatingWebhookConfiguration",
            "validating-webhook-configuration",
            hook("vdeployment.kb.io", "/validate-apps-v1-deployment", "apps", "deployments"),
        ),
    ]
)


def test_only_webhooks_of_moas_kinds_are_registered_by_url_with_the_cluster_ca() -> None:
    kueue = addons.ADDONS["kueue"]
    ports = {"kueue-webhook": 40123, "kueue-health": 40124}
    docs = kueue.webhook_configurations(MANIFESTS, ports, b"CA PEM")
    assert [d["kind"] for d in docs] == ["MutatingWebhookConfiguration"]  # no pod / deployment hooks
    (hook,) = docs[0]["webhooks"]
    assert docs[0]["metadata"] == {
        "name": "moa-kueue-mutating-webhook-configuration",
        "labels": {addons.LABEL: "kueue"},
    }
    assert hook["name"] == "mjob.kb.io" and hook["failurePolicy"] == "Fail"
    assert hook["clientConfig"] == {
        "url": "https://127.0.0.1:40123/mutate-batch-v1-job",
        "caBundle": base64.b64encode(b"CA PEM").decode(),
    }
    yaml.safe_dump_all(docs)  # plain data, ready for kubectl apply


def test_kueue_config_keeps_every_server_on_loopback(tmp_path) -> None:
    ports = {"kueue-webhook": 1, "kueue-health": 2}
    config = addons.ADDONS["kueue"].config(tmp_path, ports)
    assert (
        config["webhook"]["host"] == "127.0.0.1"
        and config["health"]["healthProbeBindAddress"] == "127.0.0.1:2"
    )
    assert config["metrics"]["bindAddress"] == "0" and not config["internalCertManagement"]["enable"]
    assert "--feature-gates=VisibilityOnDemand=false" in addons.ADDONS["kueue"].extra_flags


def test_unknown_addon_is_a_clear_error() -> None:
    assert [a.name for a in addons.resolve(["kueue", "", "jobset"])] == ["kueue", "jobset"]
    with pytest.raises(ValueError, match=r"unknown addon\(s\) kubeflow; known: kueue, jobset"):
        addons.resolve(["kubeflow"])


def test_a_cluster_started_before_addons_keeps_its_ports_and_gains_the_addons(tmp_path, monkeypatch) -> None:
    from moa.dev.cluster import Cluster

    monkeypatch.setenv("MOA_CACHE", str(tmp_path))
    cluster = Cluster("old")
    cluster.dir.mkdir(parents=True)
    (cluster.dir / "ports.json").write_text('{"etcd": 40001, "kube-apiserver": 40002}')
    ports = cluster.ports()
    assert ports["etcd"] == 40001 and ports["kube-apiserver"] == 40002
    assert {"kueue-webhook", "kueue-health", "jobset-webhook", "jobset-health"} <= set(ports)
    assert cluster.ports() == ports  # chosen once, then kept
