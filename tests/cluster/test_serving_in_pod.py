"""`moa serve` in a real pod from the moa-serving image answers the real `openai` client.

The shipped serving objects (`moa.operator.serving_manifests`, i.e. manifests/serving/: Deployment,
Service, read-only RBAC) run on the real node under Pod Security `restricted`, with a read-only
root, serving a real LoRA adapter (trained here on the tiny model, as the serving unit tests
train theirs) from the artifact volume mounted read-only. The client reaches the pod through the
Service's cluster IP, which kube-proxy routes from this host.

Two changes to the shipped Deployment, for this cluster only: the registry is the volume's
`moa run` layout (`--workdir`) instead of the Adapter resources (`--cluster`), because this
control plane serves on 127.0.0.1, which a pod cannot reach; and the resources are those of a
2-CPU node without a GPU.

Opt-in with the other image tests (`make test-pods`, MOA_TEST_PODS=1): it needs the serving
image, which is built on the 6.5 GB trainer image.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from conftest import CLAIM, UID, Kubectl
from stage_pods import POD_TEST, fresh_archives, opt_in, restricted_namespace

from moa.operator.serving_manifests import ARTIFACTS, NAME, serving
from tests.unit.serving.tiny_adapters import register, trained

IMAGES = ("moa-serving",)
pytestmark = [
    *POD_TEST,
    pytest.mark.timeout(3600),
    opt_in(IMAGES, "the serving image (built on the trainer's) and a real pod"),
]


def on_this_node(docs: list[dict[str, Any]], ns: str) -> list[dict[str, Any]]:
    """The shipped objects in NS, reading the volume's registry, sized for this node."""
    for doc in docs:
        doc["metadata"]["namespace"] = ns
        for subject in doc.get("subjects", []):
            subject["namespace"] = ns
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    args[args.index("--cluster")] = "--workdir"
    args[args.index("--namespace") : args.index("--namespace") + 2] = [ARTIFACTS]
    args.remove("--artifact-root")
    args.remove(ARTIFACTS)
    container["resources"] = {"requests": {"cpu": "500m", "memory": "2Gi"}}
    print("moa serve args in this cluster:", " ".join(args))
    return docs


def test_serving_image_answers_the_openai_client_through_the_service(
    node_cluster: Any, node_kubectl: Kubectl, node_namespace: str, volume: Path
) -> None:
    ns = node_namespace
    restricted_namespace(node_cluster, node_kubectl, ns, fresh_archives(IMAGES).values())
    # A base and a real adapter on the volume, registered as `moa run` registers a production one.
    from moa.trainer.tiny_model import build

    base = build(volume / "base")
    artifact = trained(base, volume / "checkpoints" / "adapters" / "python", "python")
    register(volume, "python-coding", "python", artifact, Path("base"))
    subprocess.run(["chown", "-R", f"{UID}:{UID}", str(volume)], check=True)

    docs = on_this_node(serving(artifacts_claim=CLAIM), ns)
    node_kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    waited = node_kubectl(
        "wait", "--for=condition=Available", f"deployment/{NAME}", "-n", ns, "--timeout=600s", check=False
    )
    pods = json.loads(node_kubectl("get", "pods", "-n", ns, "-o", "json").stdout)["items"]
    logs = node_kubectl("logs", "-n", ns, f"deployment/{NAME}", "--tail=60", check=False)
    assert waited.returncode == 0, f"{waited.stderr}\n{[p['status'] for p in pods]}\n{logs.stdout}"
    (pod,) = pods
    assert pod["spec"]["containers"][0]["image"].endswith("/moa-serving:0.1.0")
    assert pod["status"]["containerStatuses"][0]["ready"]

    service = json.loads(node_kubectl("get", "service", NAME, "-n", ns, "-o", "json").stdout)
    url = f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}/v1"
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=2, timeout=120)
    assert [m.id for m in client.models.list().data] == ["moa-auto", "python-coding"]
    raw = client.chat.completions.with_raw_response.create(
        model="moa-auto",
        messages=[{"role": "user", "content": "def f(self):\n    return None\n"}],
        temperature=0,
        max_tokens=40,
    )
    response = raw.parse()
    assert raw.headers["x-moa-adapter"] == "python-coding"
    assert (response.choices[0].message.content or "").startswith("adapter python")
    assert response.usage is not None and response.usage.completion_tokens > 0
