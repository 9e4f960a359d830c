"""Each language's sandbox image runs that language's data stages in real pods.

For every language whose `moa-sandbox-<language>` image was built (`make images`), a small spec
of that language is applied with kubectl on the real node: `fetch` (egress to the registries)
downloads the source and everything its tests need, then `mutate` and `trajectories` run with
deny-all egress from the same image, so they can only succeed with the toolchain and mutation
tool baked into it and the fetched caches. The test stops the training once trajectories
succeeded (the training stages are the demo test's subject).

Opt-in like the demo test (MOA_TEST_PODS=1, `make test-pods`): a few minutes per language.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Kubectl, OperatorProcess
from demo_spec import DEMO
from stage_pods import POD_TEST, fresh_archives, on_one_node, opt_in, restricted_namespace

from moa.api.layout import Layout
from moa.dev.node import NODE_NAME

pytestmark = [*POD_TEST, pytest.mark.timeout(3600)]

# One small real package per language, the ones its plugin's own tests mutate.
SOURCES = {
    "go": "go:github.com/google/uuid@v1.6.0",
    "rust": "crates:strsim@0.11.1",
    "typescript": "npm:ts-dedent@2.3.0",
}
DATA_STAGES = ("fetch", "mutate", "trajectories")


def spec_for(language: str, namespace: str) -> dict[str, Any]:
    doc = on_one_node(yaml.safe_load(DEMO.read_text()))
    doc["metadata"] = {"name": f"{language}-data", "namespace": namespace}
    data = doc["spec"]["data"]
    doc["spec"]["language"] = language
    data["sources"] = [SOURCES[language]]
    data["limits"]["maxMutationsPerSource"] = 4
    data["gates"]["minCaughtMutations"] = 1
    return doc


def data_stages_settled(kubectl: Kubectl, ns: str, name: str, seconds: float) -> dict[str, dict[str, Any]]:
    """Each data stage's status once trajectories succeeded, or one failed (or after SECONDS)."""
    deadline = time.monotonic() + seconds
    while True:
        obj = json.loads(kubectl("get", "adaptertraining", name, "-n", ns, "-o", "json").stdout)
        status = obj.get("status") or {}
        stages = {s["name"]: s for s in status.get("stages") or []}
        states = {n: s.get("state") for n, s in stages.items()}
        done = states.get("trajectories") == "Succeeded" or status.get("phase") == "Failed"
        if done or "Failed" in states.values() or time.monotonic() > deadline:
            return {stage: stages.get(stage, {"state": "absent"}) for stage in DATA_STAGES}
        time.sleep(5)


@pytest.mark.parametrize(
    "language",
    [
        pytest.param(lang, marks=opt_in((f"moa-sandbox-{lang}",), "a few minutes per language"))
        for lang in sorted(SOURCES)
    ],
)
def test_data_stages_run_offline_from_the_languages_sandbox_image(
    language: str,
    node_cluster: Any,
    node_kubeconfig: Path,
    node_kubectl: Kubectl,
    node_namespace: str,
    volume: Path,
    tmp_path: Path,
) -> None:
    image = f"moa-sandbox-{language}"
    archive = fresh_archives((image,))[image]
    ns, name = node_namespace, f"{language}-data"
    restricted_namespace(node_cluster, node_kubectl, ns, [archive])
    operator = OperatorProcess(node_kubeconfig, ns, tmp_path / "operator.log")
    operator.start()
    try:
        node_kubectl("apply", "-f", "-", input=yaml.safe_dump(spec_for(language, ns)))
        stages = data_stages_settled(node_kubectl, ns, name, seconds=2400)
        # Read before the training goes: its pods go with it (owner references).
        pods = json.loads(node_kubectl("get", "pods", "-n", ns, "-o", "json").stdout)["items"]
        node_kubectl("delete", "adaptertraining", name, "-n", ns, "--wait=false")
    finally:
        operator.stop()
    assert {s["state"] for s in stages.values()} == {"Succeeded"}, (
        f"{json.dumps(stages, indent=1)}\n--- operator log (tail)\n{operator.log.read_text()[-4000:]}\n"
        + "\n".join(f"{p['metadata']['name']}: {p['status'].get('phase')}" for p in pods)
    )
    ran = [p for p in pods if p["metadata"]["labels"].get("moa.dev/stage") in DATA_STAGES]
    assert {p["metadata"]["labels"]["moa.dev/stage"] for p in ran} == set(DATA_STAGES)
    for p in ran:
        assert p["spec"]["nodeName"] == NODE_NAME
        assert [c["image"] for c in p["spec"]["containers"]] == [f"ghcr.io/moa-dev/{image}:0.1.0"]
    # Real records on the volume: mutants the package's own tests caught, agent episodes.
    layout = Layout(volume, language)
    mutants = layout.mutations_of(SOURCES[language]) / "mutations.jsonl"
    assert mutants.is_file() and mutants.read_bytes().count(b"\n") >= 1, sorted(
        str(p) for p in layout.mutations_of(SOURCES[language]).rglob("*")
    )
    episodes = list(layout.stage_dir("trajectories").rglob("*.jsonl"))
    assert sum(p.read_bytes().count(b"\n") for p in episodes) >= 1, episodes
