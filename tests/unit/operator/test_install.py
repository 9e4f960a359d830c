"""The committed install manifests are exactly what the generator writes; RBAC stays narrow."""

from __future__ import annotations

from pathlib import Path

import yaml

from moa.operator.install import files, install_yaml, rbac

MANIFESTS = Path(__file__).parents[3] / "manifests"


def test_committed_manifests_match_the_generator() -> None:
    drifted = [rel for rel, text in files().items() if (MANIFESTS / rel).read_text() != text]
    assert not drifted, f"regenerate with `moa manifests install --write manifests`: {drifted}"


def test_rbac_has_no_wildcards_and_no_delete() -> None:
    role = next(o for o in rbac() if o["kind"] == "ClusterRole")
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        # Deletion is the garbage collector's job (owner references), never the operator's.
        assert not {"delete", "deletecollection", "update"} & set(rule["verbs"])
    status_rules = [r for r in role["rules"] if any(res.endswith("/status") for res in r["resources"])]
    assert all(r["verbs"] == ["patch"] for r in status_rules)


def test_install_stream_has_crds_rbac_and_a_hardened_operator() -> None:
    docs = list(yaml.safe_load_all(install_yaml()))
    kinds = [d["kind"] for d in docs]
    assert kinds.count("CustomResourceDefinition") == 2 and "ClusterRole" in kinds and "Deployment" in kinds
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz" and container["resources"]["limits"]


def test_install_stream_creates_each_namespace_before_what_lives_in_it() -> None:
    """`moa manifests install | kubectl apply -f -` on a fresh cluster: kubectl applies in stream
    order, and the API server refuses an object whose namespace does not exist yet."""
    created = {"default", "kube-system"}
    for doc in yaml.safe_load_all(install_yaml()):
        namespace = doc["metadata"].get("namespace")
        assert namespace is None or namespace in created, (
            f"{doc['kind']} {doc['metadata']['name']} before its namespace"
        )
        if doc["kind"] == "Namespace":
            created.add(doc["metadata"]["name"])
