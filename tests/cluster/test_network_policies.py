"""The per-stage network objects on a real API server: it accepts every NetworkPolicy the operator
renders, and the pods of every stage (with the teacher key, proxy and CA bundle wired in) pass
Pod Security `restricted`. Enforcement itself needs a real node (kube-router): realnode's tests."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from moa.api.stages import STAGES
from moa.api.training import AdapterTraining
from moa.operator import sandbox
from moa.operator.workloads import Context, adapter_for
from moa.pipeline.planner import Launch, workload_name

pytestmark = pytest.mark.cluster


def training(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "moa.dev/v1alpha1",
        "kind": "AdapterTraining",
        "metadata": {"name": "net", "namespace": namespace},
        "spec": {
            "language": "python",
            "data": {
                "sources": ["pypi:inflection@0.5.1"],
                "teacher": {
                    "kind": "openai",
                    "model": "gpt-4.1",
                    "endpoint": "https://10.20.30.40:8443/v1",
                    "secretRef": {"name": "teacher", "key": "token"},
                },
            },
            "network": {
                "fetch": {"proxy": "http://10.0.0.9:3128", "caBundle": {"name": "proxy-ca"}},
                "teacher": {"cidrs": ["10.20.30.0/24"]},
            },
        },
    }


def test_server_accepts_every_policy_and_restricted_stage_pod(kubectl, namespace: str) -> None:
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    kubectl("apply", "-f", "-", input=json.dumps(training(namespace)))
    obj = json.loads(kubectl("get", "at", "net", "-n", namespace, "-o", "json").stdout)
    t = AdapterTraining.model_validate(obj)
    uid = obj["metadata"]["uid"]

    policies = [sandbox.network_policy(namespace), *sandbox.egress_policies(t, namespace, uid)]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(policies))
    names = kubectl("get", "networkpolicies", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(names) == [
        "networkpolicy.networking.k8s.io/moa-stages-deny-all",
        "networkpolicy.networking.k8s.io/net-fetch-egress",
        "networkpolicy.networking.k8s.io/net-teacher-egress",
    ]
    stored = json.loads(
        kubectl("get", "networkpolicy", "net-teacher-egress", "-n", namespace, "-o", "json").stdout
    )
    assert stored["spec"]["egress"][1]["to"] == [
        {"ipBlock": {"cidr": "10.20.30.0/24"}},
        {"ipBlock": {"cidr": "10.20.30.40/32"}},
    ]
    assert stored["metadata"]["ownerReferences"][0]["uid"] == uid

    for st in STAGES:
        shard = "pypi:inflection@0.5.1" if st.fan_out else None
        launch = Launch(st.name, shard, 1, workload_name("net", st.name, shard, 1))
        ctx = Context(training=t, stage=st, launch=launch, namespace=namespace, owner_uid=uid)
        rendered = adapter_for(st, t.spec).render(ctx)
        if rendered["kind"] not in ("Pod", "Job"):
            continue
        # Server-side dry run: full validation and Pod Security admission, nothing scheduled.
        out = kubectl(
            "create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(rendered), check=False
        )
        assert out.returncode == 0, f"{st.name}: {out.stderr}"
        assert "would violate PodSecurity" not in out.stderr, f"{st.name}: {out.stderr}"
