"""Optional controllers of the local control plane: `moa dev cluster up --with kueue,trainer,training-operator`.

Each runs as a local process like the core components, from a binary built from its Go module
(controllers.py), with the upstream CRDs and webhook definitions shipped in that module. What a
Deployment + Service would give it on a real cluster is replaced by loopback equivalents:
- its webhook server listens on 127.0.0.1 with a serving certificate from the cluster CA
  (pki.py), except where the binary has no setting for its host (Kubeflow Trainer v2.0.0, the
  training-operator v1.8.1: controller-runtime's default, every interface, on a free port; see
  docs/cluster.md), and the webhooks are registered with the API server by URL (no Service: nothing
  routes a ClusterIP here), named `moa-<addon>-…` and labelled so that a later `up` without the
  addon removes them (a webhook whose server is gone would fail every matching request);
- only the webhooks of the kinds moa uses are registered (no pod or deployment webhooks, so the
  cluster never depends on an addon for objects that are not its own);
- it authenticates with its own client certificate in system:masters (upstream's ClusterRoles
  are not installed), and health is read from its probe endpoint on loopback;
- the Kubeflow controllers' cert rotators (open-policy-agent/cert-controller) wait for a serving
  certificate at the fixed /tmp/k8s-webhook-server/serving-certs, which is also
  controller-runtime's default cert dir: each gets a private /tmp (its own mount namespace,
  gone with the process) holding moa's loopback certificate. The rotator still keeps its own CA
  in its Secret and injects it into the upstream-named webhook configuration only, which moa
  never creates (moa's are named `moa-<addon>-…`), so it never touches moa's caBundle.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from moa.dev.controllers import JOBSET, KUEUE, TRAINER, TRAINING_OPERATOR, home
from moa.dev.k8s_build import GoModule, module_dir
from moa.operator.install import training_runtime

LABEL = "moa.dev/addon"
KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
# Where cert-controller's rotator looks for the serving certificate, whatever the binary's flags.
ROTATOR_CERT_DIR = Path("k8s-webhook-server/serving-certs")


@dataclass(frozen=True)
class Addon:
    name: str
    module: GoModule
    namespace: str
    crds: str  # folder of CRD YAML inside the module
    webhooks: str  # the kubebuilder webhook manifests inside the module
    resources: frozenset[tuple[str, str]]  # (apiGroup, resource) whose webhooks are registered; "*" any
    # (cert dir, ports) -> its Configuration file, for controllers that read one (Kueue, JobSet)
    config: Callable[[Path, dict[str, int]], dict[str, Any]] | None = None
    extra_flags: tuple[str, ...] = ()
    # Certificate folders the binary reads at a fixed path whatever its config says.
    fixed_cert_dirs: tuple[str, ...] = ()
    # Its cert rotator needs /tmp/k8s-webhook-server/serving-certs: run it with a private /tmp.
    private_tmp: bool = False
    # The Secret its cert rotator reads at start-up (it exits when the Secret is missing).
    rotator_secret: str | None = None
    # Cluster objects moa's workloads need from this addon, applied once its webhooks are registered.
    objects: Callable[[], list[dict[str, Any]]] | None = None
    needs: tuple[str, ...] = ()

    @property
    def binary(self) -> Path:
        return home(self.module) / "bin" / self.name

    def ports(self) -> tuple[str, str]:
        return f"{self.name}-webhook", f"{self.name}-health"

    def tmp(self, state: Path) -> Path:
        """What the process sees as /tmp when it runs with a private one."""
        return state / f"{self.name}-tmp"

    def command(self, state: Path, ports: dict[str, int]) -> list[str]:
        """Its command line; with a private /tmp, `unshare` binds tmp(STATE) over /tmp in a mount
        namespace of its own, then execs the binary (same pid, so the pid file stays right)."""
        argv = [str(self.binary), *self.flags(state, ports)]
        if not self.private_tmp:
            return argv
        if state.resolve().is_relative_to("/tmp"):
            raise ValueError(
                f"{self.name} runs with a private /tmp, which would hide the cluster state dir {state}: "
                "set MOA_CACHE to a folder outside /tmp"
            )
        bind = 'mount --bind "$0" /tmp && exec "$@"'
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            bind,
            str(self.tmp(state)),
            *argv,
        ]

    def flags(self, state: Path, ports: dict[str, int]) -> list[str]:
        """Its config file (if any) is written under STATE; --kubeconfig also marks the process as ours."""
        certs = (
            self.tmp(state) / ROTATOR_CERT_DIR if self.private_tmp else state / "webhook-certs" / self.name
        )
        for folder in (certs, *map(Path, self.fixed_cert_dirs)):
            folder.mkdir(parents=True, exist_ok=True)
            for name in ("tls.crt", "tls.key"):
                shutil.copyfile(state / "pki" / f"webhook-serving.{name.split('.')[1]}", folder / name)
        flags = [f"--kubeconfig={state / f'{self.name}.kubeconfig'}"]
        if self.config is not None:
            config = state / f"{self.name}-config.yaml"
            config.write_text(yaml.safe_dump(self.config(certs, ports)))
            flags.append(f"--config={config}")
        else:  # kubebuilder's flags; the webhook host has none: every interface
            webhook, health = self.ports()
            flags += [
                f"--health-probe-bind-address=127.0.0.1:{ports[health]}",
                "--metrics-bind-address=0",  # off: nothing scrapes it here
                f"--webhook-server-port={ports[webhook]}",
            ]
        return [*flags, *self.extra_flags]

    def setup_objects(self) -> list[dict[str, Any]]:
        """Its namespace, and the (empty) Secret its cert rotator fills with a CA moa does not use."""
        objs: list[dict[str, Any]] = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
        ]
        if self.rotator_secret:
            meta = {"name": self.rotator_secret, "namespace": self.namespace, "labels": {LABEL: self.name}}
            objs.append({"apiVersion": "v1", "kind": "Secret", "metadata": meta})
        return objs

    def health_url(self, ports: dict[str, int]) -> str:
        return f"http://127.0.0.1:{ports[self.ports()[1]]}/readyz"

    def crd_files(self) -> list[Path]:
        folder = module_dir(self.module.path, self.module.version) / self.crds
        return sorted(f for f in folder.glob("*.yaml") if f.name != "kustomization.yaml")

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


def _kubeflow(name: str, module: GoModule, namespace: str, secret: str, **kw: Any) -> Addon:
    """A Kubeflow controller: configured by kubebuilder's flags, its cert rotator reading a fixed
    cert dir, its Secret in NAMESPACE (the default outside a pod)."""
    base = "manifests/base"
    return Addon(
        name, module, namespace, f"{base}/crds", f"{base}/webhook/manifests.yaml", private_tmp=True,
        rotator_secret=secret, **kw,
    )  # fmt: skip


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
        config=_kueue_config,
        # Its visibility API server would listen on every interface; moa reads no pending lists.
        extra_flags=("--feature-gates=VisibilityOnDemand=false",),
        # Without internal cert management Kueue v0.17 loads a metrics certificate from this
        # path even when metrics are off (cmd/kueue/main.go), and exits when it is missing.
        fixed_cert_dirs=("/etc/kueue/metrics/certs",),
    ),
    "jobset": Addon(
        "jobset",
        JOBSET,
        "jobset-system",
        "config/components/crd/bases",
        "config/components/webhook/manifests.yaml",
        frozenset({("jobset.x-k8s.io", "*")}),
        config=_jobset_config,
    ),
    "trainer": _kubeflow(
        "trainer",
        TRAINER,
        "kubeflow-system",
        "kubeflow-trainer-webhook-cert",
        resources=frozenset({("trainer.kubeflow.org", "*")}),
        objects=lambda: [training_runtime()],  # the ClusterTrainingRuntime moa's TrainJobs name
        needs=("jobset",),
    ),
    "training-operator": _kubeflow(
        "training-operator",
        TRAINING_OPERATOR,
        "kubeflow",
        "training-operator-webhook-cert",
        resources=frozenset({("kubeflow.org", "pytorchjobs")}),
        # moa renders PyTorchJob only: the TFJob, MPIJob, ... controllers would only cost memory.
        extra_flags=("--enable-scheme=pytorchjob",),
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
