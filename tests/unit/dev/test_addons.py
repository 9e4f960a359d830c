"""Addons: which upstream webhooks are registered, and how they reach a loopback server."""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
from pathlib import Path
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
    make_config = addons.ADDONS["kueue"].config
    assert make_config is not None
    config = make_config(tmp_path, ports)
    assert (
        config["webhook"]["host"] == "127.0.0.1"
        and config["health"]["healthProbeBindAddress"] == "127.0.0.1:2"
    )
    assert config["metrics"]["bindAddress"] == "0" and not config["internalCertManagement"]["enable"]
    assert "--feature-gates=VisibilityOnDemand=false" in addons.ADDONS["kueue"].extra_flags


def test_unknown_addon_is_a_clear_error() -> None:
    assert [a.name for a in addons.resolve(["kueue", "", "jobset"])] == ["kueue", "jobset"]
    known = "kueue, jobset, trainer, training-operator"
    with pytest.raises(ValueError, match=rf"unknown addon\(s\) kubeflow; known: {known}"):
        addons.resolve(["kubeflow"])


def test_trainer_pulls_in_jobset_first() -> None:
    names = [a.name for a in addons.resolve(["kueue", "trainer", "training-operator"])]
    assert names == ["kueue", "jobset", "trainer", "training-operator"]


def pki(state: Path) -> None:
    (state / "pki").mkdir(parents=True)
    (state / "pki" / "webhook-serving.crt").write_text("CERT")
    (state / "pki" / "webhook-serving.key").write_text("KEY")


@pytest.mark.parametrize("name", ["trainer", "training-operator"])
def test_kubeflow_controllers_get_a_private_tmp_holding_moas_loopback_cert(name: str, tmp_path: Path) -> None:
    addon = addons.ADDONS[name]
    state = tmp_path / "state"  # pytest's tmp_path lies under /tmp: the command refuses that
    pki(state)
    ports = {f"{name}-webhook": 40123, f"{name}-health": 40124}
    with pytest.raises(ValueError, match=r"private /tmp, which would hide the cluster state dir"):
        addon.command(state, ports)
    argv = addon.flags(state, ports)
    certs = addon.tmp(state) / "k8s-webhook-server" / "serving-certs"
    assert (certs / "tls.crt").read_text() == "CERT" and (certs / "tls.key").read_text() == "KEY"
    assert "--health-probe-bind-address=127.0.0.1:40124" in argv
    assert "--metrics-bind-address=0" in argv and "--webhook-server-port=40123" in argv
    assert argv[0] == f"--kubeconfig={state / f'{name}.kubeconfig'}"
    secret = addon.setup_objects()[1]
    assert secret["kind"] == "Secret" and secret["metadata"]["namespace"] == addon.namespace


def test_a_private_tmp_is_bound_over_tmp_in_a_mount_namespace_of_its_own(tmp_path: Path) -> None:
    """Run the addon's real command line with `cat` in place of the controller: it reads moa's
    certificate at the rotator's fixed path, and the host's /tmp stays as it was."""
    addon = addons.ADDONS["trainer"]
    state = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="moa-addon-test-"))  # outside /tmp
    host_dir = Path("/tmp/k8s-webhook-server")
    existed = host_dir.exists()
    try:
        pki(state)
        argv = addon.command(state, {"trainer-webhook": 1, "trainer-health": 2})
        assert argv[:5] == ["unshare", "--mount", "--propagation", "private", "--"]
        assert argv[8] == str(addon.tmp(state)) and argv[9] == str(addon.binary)
        if shutil.which("unshare") is None:
            pytest.skip("no unshare (util-linux) here")
        seen = subprocess.run(
            [*argv[:9], "cat", "/tmp/k8s-webhook-server/serving-certs/tls.crt"],
            capture_output=True,
            text=True,
        )
        if "Operation not permitted" in seen.stderr:
            pytest.skip(f"no mount namespaces here: {seen.stderr.strip()}")
        assert seen.returncode == 0 and seen.stdout == "CERT", seen.stderr
    finally:
        shutil.rmtree(state, ignore_errors=True)
    assert host_dir.exists() == existed  # nothing written to the host's /tmp
