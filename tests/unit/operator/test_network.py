"""Per-stage network: the NetworkPolicies the operator renders, and the env of the pods that reach out.

fetch -> registries only; trajectories -> the teacher endpoint only (nothing for the oracle),
with the key from secretRef; every other stage -> nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from moa.api.stages import STAGES, stage
from moa.api.training import AdapterTraining
from moa.operator import sandbox
from moa.operator.workloads import Context, adapter_for
from moa.pipeline.planner import Launch, workload_name


def training(teacher: dict[str, Any] | None = None, network: dict[str, Any] | None = None) -> AdapterTraining:
    spec: dict[str, Any] = {"language": "python", "data": {"sources": ["pypi:inflection@0.5.1"]}}
    if teacher:
        spec["data"]["teacher"] = teacher
    if network:
        spec["network"] = network
    return AdapterTraining.model_validate({"metadata": {"name": "py", "namespace": "ml"}, "spec": spec})


def render(t: AdapterTraining, stage_name: str) -> dict[str, Any]:
    st = stage(stage_name)
    shard = t.spec.data.sources[0] if st.fan_out else None
    launch = Launch(stage_name, shard, 1, workload_name("py", stage_name, shard, 1))
    c = Context(training=t, stage=st, launch=launch, namespace="ml", owner_uid="uid-1")
    return adapter_for(st, t.spec).render(c)


def container(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]
    return dict(spec["containers"][0])


def pod_labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict(
        obj["metadata"]["labels"] if obj["kind"] == "Pod" else obj["spec"]["template"]["metadata"]["labels"]
    )


def selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    sel = policy["spec"]["podSelector"]
    if any(labels.get(k) != v for k, v in sel.get("matchLabels", {}).items()):
        return False
    return all(e["operator"] == "Exists" and e["key"] in labels for e in sel.get("matchExpressions", []))


API_TEACHER = {
    "kind": "openai",
    "model": "gpt-4.1",
    "endpoint": "http://10.20.30.40:8000/v1",
    "secretRef": {"name": "teacher", "key": "token"},
}


def reach(t: AdapterTraining) -> dict[str, list[dict[str, Any]]]:
    """Stage -> the egress rules that apply to its pod (deny-all included, so [] = nothing)."""
    policies = [sandbox.network_policy("ml"), *sandbox.egress_policies(t, "ml", "uid-1")]
    out: dict[str, list[dict[str, Any]]] = {}
    for st in STAGES:
        labels = pod_labels(render(t, st.name))
        chosen = [p for p in policies if selects(p, labels)]
        assert any(p["metadata"]["name"] == sandbox.POLICY for p in chosen), f"{st.name} escapes deny-all"
        out[st.name] = [rule for p in chosen for rule in p["spec"].get("egress", [])]
    return out


def test_only_fetch_has_egress_with_the_oracle_teacher() -> None:
    rules = reach(training())
    assert {name for name, r in rules.items() if r} == {"fetch"}
    dns, tcp = rules["fetch"]
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert [p["port"] for p in tcp["ports"]] == [443, 80]
    # No CIDRs in the spec: public addresses only -- the cluster, the node and metadata stay out.
    v4 = tcp["to"][0]["ipBlock"]
    assert v4["cidr"] == "0.0.0.0/0" and {"10.0.0.0/8", "169.254.0.0/16", "127.0.0.0/8"} <= set(v4["except"])


def test_api_teacher_reaches_its_endpoint_only_and_gets_its_key() -> None:
    t = training(teacher=API_TEACHER)
    rules = reach(t)
    assert {name for name, r in rules.items() if r} == {"fetch", "trajectories"}
    tcp = rules["trajectories"][1]
    assert tcp["to"] == [{"ipBlock": {"cidr": "10.20.30.40/32"}}]
    assert sorted(p["port"] for p in tcp["ports"]) == [443, 8000]
    key = {"name": "MOA_TEACHER_API_KEY", "valueFrom": {"secretKeyRef": {"name": "teacher", "key": "token"}}}
    for st in STAGES:
        env = container(render(t, st.name))["env"]
        assert (key in env) == (st.name == "trajectories"), st.name


def test_oracle_trajectories_get_no_key_even_with_a_secret_ref() -> None:
    t = training(teacher={"kind": "oracle", "secretRef": {"name": "teacher"}})
    env = container(render(t, "trajectories"))["env"]
    assert not any(e["name"] == "MOA_TEACHER_API_KEY" for e in env)


def test_spec_cidrs_and_proxy_narrow_the_fetch_egress() -> None:
    t = training(network={"fetch": {"cidrs": ["151.101.0.0/16"], "proxy": "http://10.0.0.9:3128"}})
    tcp = reach(t)["fetch"][1]
    assert tcp["to"] == [{"ipBlock": {"cidr": "151.101.0.0/16"}}, {"ipBlock": {"cidr": "10.0.0.9/32"}}]
    assert [p["port"] for p in tcp["ports"]] == [443, 80, 3128]
    env = {e["name"]: e.get("value") for e in container(render(t, "fetch"))["env"]}
    assert env["HTTPS_PROXY"] == env["HTTP_PROXY"] == "http://10.0.0.9:3128"
    assert "HTTPS_PROXY" not in {e["name"] for e in container(render(t, "mutate"))["env"]}


def test_fetch_runs_the_language_toolchain_image_unsandboxed() -> None:
    obj = render(training(), "fetch")
    assert container(obj)["image"].endswith("/moa-sandbox-python:0.1.0")
    assert "moa.dev/sandbox" not in pod_labels(obj)
    assert container(obj)["command"][:3] == ["moa", "datagen", "fetch"]


def test_egress_policies_are_owned_by_their_training() -> None:
    for policy in sandbox.egress_policies(training(teacher=API_TEACHER), "ml", "uid-1"):
        assert policy["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
        assert policy["spec"]["policyTypes"] == ["Egress"]


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "pypi.org", "300.0.0.0/8"])
def test_bad_cidr_is_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(ValueError, match=r"network\.fetch\.cidrs"):
        training(network={"fetch": {"cidrs": [bad]}})


def test_ca_bundle_is_mounted_only_where_there_is_egress() -> None:
    t = training(network={"fetch": {"caBundle": {"name": "proxy-ca"}}})
    fetch = render(t, "fetch")
    env = {e["name"]: e.get("value") for e in container(fetch)["env"]}
    assert env["SSL_CERT_FILE"] == "/etc/moa/ca/ca.crt"
    mount = next(m for m in container(fetch)["volumeMounts"] if m["name"] == "ca-bundle")
    assert mount == {"name": "ca-bundle", "mountPath": "/etc/moa/ca", "readOnly": True}
    volume = next(v for v in fetch["spec"]["volumes"] if v["name"] == "ca-bundle")
    assert volume["configMap"] == {"name": "proxy-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    mutate = render(t, "mutate")
    assert "SSL_CERT_FILE" not in {e["name"] for e in container(mutate)["env"]}
    assert not any(v["name"] == "ca-bundle" for v in mutate["spec"]["volumes"])
