"""The Adapter controller against the real API server: it writes status only (Git owns every
spec), so a second production adapter of a language stays PromotionBlocked until the first is
retired in Git, and then is promoted without anyone touching it again."""

from __future__ import annotations

from typing import Any

import pytest

from moa.api.gates import check
from moa.operator.kube import Kube
from moa.operator.main import Operator
from moa.operator.reconcile import API

pytestmark = pytest.mark.cluster


def adapter(name: str, namespace: str, stage: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Adapter",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"language": "python", "baseModel": "base", "artifact": f"adapters/{name}", "stage": stage},
    }


def passed_eval() -> dict[str, Any]:
    return {"stage": "trained", "gates": [check("eval.pass_at_1", 0.6, ">=", 0.5).to_yaml_dict()]}


def git_sets(kube: Kube, namespace: str, name: str, stage: str) -> None:
    """What a GitOps sync does: edit spec.stage."""
    url = f"/apis/{API}/namespaces/{namespace}/adapters/{name}"
    kube.request("PATCH", url, body={"spec": {"stage": stage}}, content_type="application/merge-patch+json")


def conditions(obj: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in obj["status"].get("conditions", [])}


def test_second_production_adapter_waits_for_git_to_retire_the_first(kube_api, namespace: str) -> None:
    kube = Kube(kube_api)
    op = Operator(kube)
    get = lambda name: kube.get(API, "adapters", namespace, name)  # noqa: E731
    for name in ("old", "new"):
        kube.create(adapter(name, namespace, "trained"))
        kube.patch_status(API, "adapters", namespace, name, passed_eval())

    # Git promotes `old`: the controller follows.
    git_sets(kube, namespace, "old", "production")
    op.reconcile_adapters(namespace, "old")
    assert get("old")["status"]["stage"] == "production"

    # Git promotes `new` too: blocked, and the controller edits neither spec.
    old_spec = get("old")["spec"]
    git_sets(kube, namespace, "new", "production")
    op.reconcile_adapters(namespace, "new")
    new = get("new")
    assert new["status"]["stage"] == "trained"
    assert conditions(new)["PromotionBlocked"] == ("True", "AnotherProduction")
    assert (
        "old is production"
        in next(c for c in new["status"]["conditions"] if c["type"] == "PromotionBlocked")["message"]
    )
    assert get("old")["spec"] == old_spec and get("old")["status"]["stage"] == "production"

    # Git retires `old`: reconciling it unblocks `new` in the same pass.
    git_sets(kube, namespace, "old", "retired")
    op.reconcile_adapters(namespace, "old")
    assert get("old")["status"]["stage"] == "retired"
    new = get("new")
    assert new["status"]["stage"] == "production" and conditions(new)["Promoted"] == ("True", "Stage")
    op.pool.shutdown()
