"""The real node's files: containerd's TOML, kubelet/kube-proxy configs, OCI archives, KWOK nodes."""

from __future__ import annotations

import json
import tarfile
import tomllib
from pathlib import Path

import yaml

from moa.dev import node_config, oci
from moa.dev.cluster import kwok_nodes
from moa.dev.node_config import NodeLayout


def test_containerd_config_parses_and_carries_the_host_specific_settings(tmp_path: Path):
    config = tomllib.loads(node_config.containerd_toml(NodeLayout(tmp_path), "moa.local/pause:abc"))
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    assert config["version"] == 4 and config["root"].startswith(str(tmp_path))
    assert runtime["restrict_oom_score_adj"] is True and runtime["netns_mounts_under_state_dir"] is True
    assert runtime["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert (
        config["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == "moa.local/pause:abc"
    )
    assert config["plugins"]["io.containerd.grpc.v1.cri"]["stream_server_address"] == "127.0.0.1"


def test_toml_dump_quotes_dotted_keys_and_nests_tables():
    text = node_config.toml_dump({"a": 1, "t": {"x.y": {"s": "v", "l": [1, 2]}, "b": True}})
    assert tomllib.loads(text) == {"a": 1, "t": {"x.y": {"s": "v", "l": [1, 2]}, "b": True}}


def test_kubelet_and_kube_proxy_configs_fit_a_cgroup_v1_host_without_systemd(tmp_path: Path):
    kubelet = yaml.safe_load(node_config.kubelet_yaml(NodeLayout(tmp_path), 10250, 10248, tmp_path))
    assert kubelet["failCgroupV1"] is False and kubelet["cgroupDriver"] == "cgroupfs"
    assert (
        kubelet["address"] == node_config.GATEWAY
        and kubelet["authentication"]["anonymous"]["enabled"] is False
    )
    proxy = yaml.safe_load(node_config.kube_proxy_yaml(NodeLayout(tmp_path), "n", 1, 2))
    assert proxy["mode"] == "iptables" and proxy["conntrack"]["maxPerCore"] == 0
    conf = json.loads(node_config.cni_conflist(NodeLayout(tmp_path)))
    assert conf["plugins"][0]["bridge"] == node_config.BRIDGE and conf["name"] == node_config.NETWORK


def test_oci_archive_is_reproducible_and_names_its_image(tmp_path: Path):
    image = oci.Image("moa.local/t:1", (oci.ImageFile("bin/tool", b"\x7fELF..."),), ("/bin/tool",))
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    assert oci.write_archive(image, first) == oci.write_archive(image, second)
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        manifest_digest = index["manifests"][0]["digest"].split(":")[1]
        manifest = json.load(tar.extractfile(f"blobs/sha256/{manifest_digest}"))  # type: ignore[arg-type]
        layer = tar.extractfile(f"blobs/sha256/{manifest['layers'][0]['digest'].split(':')[1]}")
        with tarfile.open(fileobj=layer) as inner:  # type: ignore[arg-type]
            assert inner.getnames() == ["bin", "bin/tool"]
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == "moa.local/t:1"


def test_with_a_real_node_only_the_gpu_pool_stays_simulated():
    pools = {d["metadata"]["labels"]["moa.dev/pool"] for d in yaml.safe_load_all(kwok_nodes(gpu_only=True))}
    assert pools == {"gpu"}
    assert "cpu" in {d["metadata"]["labels"]["moa.dev/pool"] for d in yaml.safe_load_all(kwok_nodes(False))}
