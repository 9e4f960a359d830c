"""The operator's informer cache against the real API server: the periodic metadata-only relist
drops what a missed watch event left behind, and leaves the rest as the full lists filled it."""

from __future__ import annotations

import pytest
from kubernetes import client

from moa.operator import cache
from moa.operator.cache import CachedKube

pytestmark = pytest.mark.cluster

CONFIG_MAPS = ("v1", "configmaps")


def test_metadata_relist_prunes_a_missed_deletion_and_keeps_the_rest(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    for name in ("kept", "gone"):
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": name, "labels": {"moa.dev/training": "py"}}, "data": {"k": "v"}}
        )
    kube = CachedKube(kube_api, [CONFIG_MAPS], with_spec=[], index_label="moa.dev/training")
    kube.relist([namespace])
    assert sorted(
        o["metadata"]["name"] for o in kube.list(*CONFIG_MAPS, namespace, "moa.dev/training=py")
    ) == [
        "gone",
        "kept",
    ]
    core.delete_namespaced_config_map("gone", namespace)  # no watch here: the DELETED event is "missed"
    before = sum(kube.requests.values())
    kube.relist([namespace], metadata_only=True)
    assert sum(kube.requests.values()) - before == 1  # one LIST per kind and namespace
    kept = kube.list(*CONFIG_MAPS, namespace, "moa.dev/training=py")
    assert [o["metadata"]["name"] for o in kept] == ["kept"]
    # What the full list stored stays (a metadata answer has no apiVersion of the object's own).
    assert kept[0]["apiVersion"] == "v1" and kept[0]["kind"] == "ConfigMap"


def test_relists_read_in_pages_and_prune_only_what_no_page_holds(
    kube_api: client.ApiClient, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "RELIST_PAGE", 2)
    core = client.CoreV1Api(kube_api)
    names = [f"cm-{i}" for i in range(5)]
    for name in names:
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": name, "labels": {"moa.dev/training": "py"}}, "data": {"k": "v"}}
        )
    kube = CachedKube(kube_api, [CONFIG_MAPS], with_spec=[], index_label="moa.dev/training")

    def cached() -> list[str]:
        return sorted(
            o["metadata"]["name"] for o in kube.list(*CONFIG_MAPS, namespace, "moa.dev/training=py")
        )

    kube.relist([namespace])
    assert cached() == names
    assert kube.get(*CONFIG_MAPS, namespace, "cm-4")["kind"] == "ConfigMap"  # type: ignore[index]
    core.delete_namespaced_config_map("cm-0", namespace)  # on the first page
    core.delete_namespaced_config_map("cm-4", namespace)  # on the last
    present = len(core.list_namespaced_config_map(namespace).items)  # with the namespace's own CA
    before = sum(kube.requests.values())
    kube.relist([namespace], metadata_only=True)
    assert sum(kube.requests.values()) - before == -(-present // 2)  # one LIST per page of 2
    assert cached() == names[1:4]
