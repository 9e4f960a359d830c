"""What the tests that run moa's stages in real pods share (the artifact volume is conftest's
`volume` fixture): fresh images, the spec sized for the real node, waiting for a training."""

from __future__ import annotations

import calendar
import json
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from conftest import CLAIM, Kubectl
from demo_spec import moa

from moa.dev.images import built_archives

HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# What every test of moa's stages in real pods is: a cluster test on the real node, and slow.
POD_TEST = [pytest.mark.cluster, pytest.mark.real_node, pytest.mark.slow]


def opt_in(names: tuple[str, ...], duration: str) -> pytest.MarkDecorator:
    """Skip at collection, with the reason, unless asked for (MOA_TEST_PODS=1: these tests take
    DURATION) and the images NAMES were built once: no node is started for a skipped test."""
    missing = [name for name in names if name not in built_archives()]
    reason = (
        f"{duration}: `make test-pods` (MOA_TEST_PODS=1) runs it"
        if not os.environ.get("MOA_TEST_PODS")
        else f"moa's images not built yet ({', '.join(missing)}): run `make images` once"
    )
    return pytest.mark.skipif(not os.environ.get("MOA_TEST_PODS") or bool(missing), reason=reason)


def fresh_archives(names: tuple[str, ...]) -> dict[str, Path]:
    """The images NAMES, rebuilt when the sources changed since (buildah's layer cache keeps the
    dependency layers, so that costs minutes): pods must run the code under test."""
    built = moa("dev", "images", "build", *[f"--only={name}" for name in names], timeout=3600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    found = built_archives()
    return {name: found[name] for name in names}


def restricted_namespace(node_cluster: Any, kubectl: Kubectl, ns: str, archives: Iterable[Path]) -> None:
    """NS as the stage pods need it: ARCHIVES imported into the node, Pod Security `restricted`
    enforced, and the host's CA bundle in ConfigMap `host-ca` (see `on_one_node`)."""
    node_cluster.node.import_images(list(archives))
    kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    kubectl("create", "configmap", "host-ca", "-n", ns, f"--from-file=ca.crt={HOST_CA}")


def on_one_node(doc: dict[str, Any]) -> dict[str, Any]:
    """DOC on the test's claim, sized for one 2-CPU node, with the host's CAs for the fetch pod
    (this host's egress may pass a TLS-inspecting proxy: the test creates ConfigMap `host-ca`)."""
    spec = doc["spec"]
    spec["storage"] = {"claimName": CLAIM}
    spec["network"] = {"fetch": {"caBundle": {"name": "host-ca", "key": "ca.crt"}}}
    spec["resources"] = {
        "gpus": 0,
        "cpu": "1500m",
        "memory": "6Gi",
        "sandbox": {"cpu": "750m", "memory": "3Gi"},
    }
    return doc


def wait_settled(kubectl: Kubectl, ns: str, name: str, seconds: float) -> dict[str, Any]:
    """The training once Ready or Failed (or after SECONDS), printing its phase as it moves."""
    deadline, last = time.monotonic() + seconds, ""
    while True:
        obj = json.loads(kubectl("get", "adaptertraining", name, "-n", ns, "-o", "json").stdout)
        status = obj.get("status") or {}
        phase = f"{status.get('phase')} {status.get('stage', '')}"
        if phase != last:
            print(f"[{time.strftime('%H:%M:%S')}] {phase}", flush=True)
            last = phase
        conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
        if (
            conditions.get("Ready") == "True"
            or status.get("phase") == "Failed"
            or time.monotonic() > deadline
        ):
            return obj
        time.sleep(5)


class PodKiller(threading.Thread):
    """Deletes, once, the first pod of each of STAGES after it has been Running for SECONDS, as a
    node drain or `kubectl delete pod` would mid-run; `killed` maps stage -> the deleted pod."""

    def __init__(self, kubectl: Kubectl, ns: str, stages: tuple[str, ...], seconds: float) -> None:
        super().__init__(daemon=True)
        self.kubectl, self.ns, self.seconds = kubectl, ns, seconds
        self.waiting = set(stages)
        self.killed: dict[str, str] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while self.waiting and not self.done.wait(2):
            listed = self.kubectl("get", "pods", "-n", self.ns, "-o", "json", check=False)
            for pod in json.loads(listed.stdout or '{"items": []}')["items"]:
                stage = (pod["metadata"].get("labels") or {}).get("moa.dev/stage")
                running = {
                    s["name"]: s["state"]["running"]["startedAt"]
                    for s in pod["status"].get("containerStatuses") or []
                    if "running" in s.get("state", {})
                }
                if stage in self.waiting and running and self._ran_long_enough(min(running.values())):
                    name = pod["metadata"]["name"]
                    self.kubectl("delete", "pod", name, "-n", self.ns, "--wait=false")
                    print(f"[{time.strftime('%H:%M:%S')}] deleted pod {name} of stage {stage} mid-run")
                    self.killed[stage] = name
                    self.waiting.discard(stage)

    def _ran_long_enough(self, started_at: str) -> bool:
        started = calendar.timegm(time.strptime(started_at, "%Y-%m-%dT%H:%M:%SZ"))
        return time.time() - started >= self.seconds

    def stop(self) -> None:
        self.done.set()
        self.join()
