"""Optional controllers of the local control plane: `moa dev cluster up --with kueue,jobset`.

Each runs as a local process like the core components, from a binary built from its Go module
(controllers.py), with the upstream CRDs and webhook definitions shipped in that module. What a
Deployment + Service would give it on a real cluster is replaced by loopback equivalents:
- its webhook server listens on 127.0.0.1 with a serving certificate from the cluster CA
  (pki.py), and the webhooks are registered with the API server by URL (no Service: nothing
  routes a ClusterIP here), named `moa-<addon>-…` and labelled so that a later `up` without the
  addon removes them (a webhook whose server is gone would fail every matching request);
- only the webhooks of the kinds moa uses are registered (no pod or deployment webhooks, so the
  cluster never depends on an addon for objects that are not its own);
- it authenticates with its own client certificate in system:masters (upstream's ClusterRoles
  are not installed), and health is read from its probe endpoint on loopback.
Kubeflow Trainer v2 and the training-operator are not addons yet: their webhook servers bind
every interface with no flag to change it (see docs/cluster.md).
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from moa.dev.controllers import JOBSET, KUEUE, home
from moa.dev.k8s_build import GoModule, module_dir

LABEL = "moa.dev/addon"
KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


@dataclass(frozen=True)
class Addon:
    name: str
    module: GoModule
    namespace: str
    crds: str  # folder of CRD YAML inside the module
    webhooks: str  # the kubebuilder webhook manifests inside the module
    resources: frozenset[tuple[str, str]]  # (apiGroup, resource) whose webhooks are registered; "*" any
    config: Callable[[Path, dict[str, int]], dict[str, Any]]  # (cert dir, ports) -> its Configuration
    extra_flags: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()

    @property
    def binary(self) -> Path:
        return home(self.module) / "bin" / self.name

    def ports(self) -> tuple[str, str]:
        return f"{self.name}-webhook", f"{self.name}-health"

    def flags(self, state: Path, ports: dict[str, int]) -> list[str]:
        """Its config file is written under STATE; --kubeconfig also marks the process as ours."""
        certs = state / "webhook-certs" / self.name
        certs.mkdir(parents=True, exist_ok=True)
        for name in ("tls.crt", "tls.key"):
            shutil.copyfile(state / "pki" / f"webhook-serving.{name.split('.')[1]}", certs / name)
        config = state / f"{self.name}-config.yaml"
        config.write_text(yaml.safe_dump(self.config(certs, ports)))
        return [
            f"--kubeconfig={state / f'{self.name}.kubeconfig'}",
            f"--config={config}",
            *self.extra_flags,
        ]

    def health_url(self, ports: dict[str, int]) -> str:
        return f"http://127.0.0.1:{ports[self.ports()[1]]}/readyz"

    def crd_files(self) -> list[Path]:
        return sorted((module_dir(self.module.path, self.module.version) / self.crds).glob("*.yaml"))

    def webhook_manifests(self) -> str:
        return (module_dir(self.module.path, self.module.version) / self.webhooks).read_text()

    def webhook_configurations(self, text: str, ports: dict[str, int], ca: bytes) -> list[dict[str, Any]]:
        """The webhook configurations in TEXT for moa's kinds, pointed at our loopback server."""
        out = []
        for doc in yaml.safe_load_all(text):
            if not doc or doc.get("kind") not in KINDS:
                continue
            hooks = [self.loopback(h, ports, ca) for h in doc.get("webhooks", []) if self.wanted(h)]
            if hooks:
                meta = {"name": f"moa-{self.name}-{doc['metadata']['name']}", "labels": {LABEL: self.name}}
                out.append(
                    {
                        "apiVersion": doc["apiVersion"],
                        "kind": doc["kind"],
                        "metadata": meta,
                        "webhooks": hooks,
                    }
                )
        return out

    def wanted(self, hook: dict[str, Any]) -> bool:
        targets = {
            (g, r) for rule in hook.get("rules", []) for g in rule["apiGroups"] for r in rule["resources"]
        }
        return any((g, r) in self.resources or (g, "*") in self.resources for g, r in targets)

    def loopback(self, hook: dict[str, Any], ports: dict[str, int], ca: bytes) -> dict[str, Any]:
        path = hook["clientConfig"]["service"]["path"]
        url = f"https://127.0.0.1:{ports[self.ports()[0]]}{path}"
        return {**hook, "clientConfig": {"url": url, "caBundle": base64.b64encode(ca).decode()}}


def _kueue_config(certs: Path, ports: dict[str, int]) -> dict[str, Any]:
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": "kueue-system",
        "health": {"healthProbeBindAddress": f"127.0.0.1:{ports['kueue-health']}"},
        "metrics": {"bindAddress": "0"},  # off: nothing scrapes it here
        "webhook": {"port": ports["kueue-webhook"], "host": "127.0.0.1", "certDir": str(certs)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "manageJobsWithoutQueueName": False,  # only workloads that name a queue are Kueue's
        "integrations": {
            "frameworks": [
                "batch/job",
                "kubeflow.org/pytorchjob",
                "trainer.kubeflow.org/trainjob",
                "jobset.x-k8s.io/jobset",
            ]
        },
    }


def _jobset_config(certs: Path, ports: dict[str, int]) -> dict[str, Any]:
    return {
        "apiVersion": "config.jobset.x-k8s.io/v1alpha1",
        "kind": "Configuration",
        "health": {"healthProbeBindAddress": f"127.0.0.1:{ports['jobset-health']}"},
        "metrics": {"bindAddress": "0"},
        "webhook": {"port": ports["jobset-webhook"], "host": "127.0.0.1", "certDir": str(certs)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
    }


ADDONS = {
    "kueue": Addon(
        "kueue",
        KUEUE,
        "kueue-system",
        "config/components/crd/bases",
        "config/components/webhook/manifests.yaml",
        frozenset(
            {
                ("kueue.x-k8s.io", "*"),
                ("batch", "jobs"),
                ("kubeflow.org", "pytorchjobs"),
                ("trainer.kubeflow.org", "trainjobs"),
                ("jobset.x-k8s.io", "jobsets"),
            }
        ),
        _kueue_config,
        # Its visibility API server would listen on every interface; moa reads no pending lists.
        extra_flags=("--feature-gates=VisibilityOnDemand=false",),
    ),
    "jobset": Addon(
        "jobset",
        JOBSET,
        "jobset-system",
        "config/components/crd/bases",
        "config/components/webhook/manifests.yaml",
        frozenset({("jobset.x-k8s.io", "*")}),
        _jobset_config,
    ),
}


def resolve(names: Iterable[str]) -> list[Addon]:
    """The named addons and those they need, dependencies first; a clear error for unknown names."""
    wanted = [n.strip() for n in names if n.strip()]
    unknown = sorted(set(wanted) - set(ADDONS))
    if unknown:
        raise ValueError(f"unknown addon(s) {', '.join(unknown)}; known: {', '.join(ADDONS)}")
    out: list[Addon] = []
    for name in wanted:
        for dep in (*ADDONS[name].needs, name):
            if ADDONS[dep] not in out:
                out.append(ADDONS[dep])
    return out
