"""The install manifests, generated here and committed under manifests/ (a test fails on drift):
RBAC with exactly the verbs the operator uses, the operator Deployment, the sandbox namespace
objects, moa's Kubeflow TrainingRuntime, and kustomize base + overlays.

`moa manifests install` prints CRDs + RBAC + operator as one YAML stream for `kubectl apply -f -`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from moa.api.cli import manifests
from moa.api.crd import RESOURCES, crd_yaml
from moa.api.training import IMAGE_REGISTRY, IMAGE_TAG
from moa.operator.sandbox import network_policy
from moa.operator.serving_manifests import serving
from moa.operator.workloads.trainjob import NODE, RUNTIME

NAMESPACE = "moa-system"
NAME = "moa-operator"
LABELS = {"app.kubernetes.io/name": "moa", "app.kubernetes.io/component": "operator"}
RESTRICTED_NS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def rbac() -> list[dict[str, Any]]:
    """Exactly what the reconcile, the Adapter controller and kopf's watches use."""
    rules = [
        _rule(["moa.dev"], ["adaptertrainings"], ["get", "list", "watch"]),
        _rule(["moa.dev"], ["adaptertrainings/status"], ["patch"]),
        _rule(["moa.dev"], ["adapters"], ["get", "list", "watch", "create"]),
        _rule(["moa.dev"], ["adapters/status"], ["patch"]),
        _rule([""], ["pods"], ["list", "watch", "create"]),
        _rule(["batch"], ["jobs"], ["list", "watch", "create"]),
        _rule(["kubeflow.org"], ["pytorchjobs"], ["list", "watch", "create"]),
        _rule(["trainer.kubeflow.org"], ["trainjobs"], ["list", "watch", "create"]),
        _rule([""], ["configmaps", "persistentvolumeclaims"], ["create"]),
        _rule(["networking.k8s.io"], ["networkpolicies"], ["create"]),
        _rule([""], ["events"], ["create"]),
        _rule(["events.k8s.io"], ["events"], ["create"]),  # kopf's own event posting, if re-enabled
        _rule(
            ["apiextensions.k8s.io"], ["customresourcedefinitions"], ["list", "watch"]
        ),  # kopf's resource scan
    ]
    meta = {"name": NAME, "labels": LABELS}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {**meta, "namespace": NAMESPACE}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta,
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
        },
    ]


def operator(image: str = f"{IMAGE_REGISTRY}/moa-operator:{IMAGE_TAG}") -> list[dict[str, Any]]:
    probe = {"httpGet": {"path": "/healthz", "port": "health"}, "periodSeconds": 10, "timeoutSeconds": 5}
    container = {
        "name": "operator",
        "image": image,
        "args": ["moa", "operator", "run", "--liveness-port", "8080", "--metrics-port", "9090"],
        "ports": [{"name": "health", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}],
        "livenessProbe": {**probe, "failureThreshold": 3},
        "readinessProbe": {**probe, "failureThreshold": 1},
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "env": [{"name": "HOME", "value": "/tmp"}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": {**LABELS, **RESTRICTED_NS}},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": LABELS},
            "spec": {
                "replicas": 1,  # one reconciler: kopf runs standalone, no peering
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": LABELS},
                "template": {
                    "metadata": {"labels": LABELS},
                    "spec": {
                        "serviceAccountName": NAME,
                        "enableServiceLinks": False,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [container],
                        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "100Mi"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"{NAME}-metrics", "namespace": NAMESPACE, "labels": LABELS},
            "spec": {
                "selector": LABELS,
                "ports": [{"name": "metrics", "port": 9090, "targetPort": "metrics"}],
            },
        },
    ]


def sandbox(namespace: str = "moa-training") -> list[dict[str, Any]]:
    """A training namespace: Pod Security restricted, deny-all for stage pods, quota, limits."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": RESTRICTED_NS}},
        network_policy(namespace),
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "moa-training", "namespace": namespace},
            "spec": {
                "hard": {
                    "pods": "200",
                    "requests.cpu": "256",
                    "requests.memory": "2Ti",
                    "requests.nvidia.com/gpu": "16",
                }
            },
        },
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": "moa-training", "namespace": namespace},
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": "2", "memory": "8Gi", "ephemeral-storage": "20Gi"},
                        "defaultRequest": {"cpu": "2", "memory": "8Gi", "ephemeral-storage": "20Gi"},
                        "max": {"ephemeral-storage": "100Gi"},
                    }
                ]
            },
        },
        {
            "apiVersion": "node.k8s.io/v1",
            "kind": "RuntimeClass",
            "metadata": {"name": "gvisor"},
            "handler": "runsc",
        },
    ]


def training_runtime(image: str = f"{IMAGE_REGISTRY}/moa-trainer:{IMAGE_TAG}") -> dict[str, Any]:
    """The ClusterTrainingRuntime TrainJobs reference: one node, restricted security context."""
    security = {
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    pod = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [{"name": NODE, "image": image, "securityContext": security}],
    }
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "ClusterTrainingRuntime",
        "metadata": {"name": RUNTIME, "labels": {"trainer.kubeflow.org/framework": "torch"}},
        "spec": {
            "mlPolicy": {"numNodes": 1, "torch": {"numProcPerNode": "auto"}},
            "template": {
                "spec": {
                    "replicatedJobs": [
                        {
                            "name": NODE,
                            "template": {
                                "metadata": {
                                    "labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}
                                },
                                "spec": {"backoffLimit": 0, "template": {"spec": pod}},
                            },
                        }
                    ]
                }
            },
        },
    }


def _dump(objs: list[dict[str, Any]]) -> str:
    return "---\n".join(yaml.safe_dump(o, sort_keys=False) for o in objs)


def _kustomization(resources: list[str]) -> str:
    return _dump(
        [{"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources}]
    )


def files() -> dict[str, str]:
    """Every generated file under manifests/, by relative path."""
    out = {
        "rbac/rbac.yaml": _dump(rbac()),
        "operator/operator.yaml": _dump(operator()),
        "sandbox/sandbox.yaml": _dump(sandbox()),
        "kubeflow/training-runtime.yaml": _dump([training_runtime()]),
        "serving/serving.yaml": _dump(serving()),
    }
    for folder, names in {
        "crds": [r.file_name for r in RESOURCES],
        "rbac": ["rbac.yaml"],
        "operator": ["operator.yaml"],
        "sandbox": ["sandbox.yaml"],
        "kubeflow": ["training-runtime.yaml"],
        "serving": ["serving.yaml"],
    }.items():
        out[f"{folder}/kustomization.yaml"] = _kustomization(names)
    out["base/kustomization.yaml"] = _kustomization(["../crds", "../rbac", "../operator"])
    out["overlays/dev/kustomization.yaml"] = _dump(
        [
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["../../base", "../../sandbox", "../../serving"],
                "images": [{"name": f"{IMAGE_REGISTRY}/moa-operator", "newTag": "dev"}],
                "patches": [
                    {
                        "target": {"kind": "Deployment", "name": NAME},
                        "patch": yaml.safe_dump(
                            [
                                {
                                    "op": "add",
                                    "path": "/spec/template/spec/containers/0/args/-",
                                    "value": "--plain-logs",
                                }
                            ]
                        ),
                    }
                ],
            }
        ]
    )
    out["overlays/production/kustomization.yaml"] = _dump(
        [
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["../../base", "../../sandbox", "../../kubeflow", "../../serving"],
                "patches": [
                    {
                        "target": {"kind": "Deployment", "name": NAME},
                        "patch": yaml.safe_dump(
                            [
                                {
                                    "op": "replace",
                                    "path": "/spec/template/spec/containers/0/resources",
                                    "value": {
                                        "requests": {"cpu": "500m", "memory": "512Mi"},
                                        "limits": {"cpu": "2", "memory": "1Gi"},
                                    },
                                }
                            ]
                        ),
                    }
                ],
            }
        ]
    )
    return out


# The order `kubectl apply -f -` must see them in, as Helm installs: a namespaced object after
# its Namespace (the API server refuses it otherwise), a binding after its role and account.
INSTALL_ORDER = ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment")


def install_yaml(image: str | None = None) -> str:
    crds = "---\n".join(crd_yaml(r) for r in RESOURCES)
    objs = sorted(
        rbac() + (operator(image) if image else operator()), key=lambda o: INSTALL_ORDER.index(o["kind"])
    )
    return crds + "---\n" + _dump(objs)


@manifests.command("install")
@click.option("--image", default=None, help="Operator image (default: the release image).")
@click.option(
    "--write",
    "write_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Regenerate the committed manifests/ tree here instead.",
)
def install_cmd(image: str | None, write_dir: Path | None) -> None:
    """Print the whole install YAML (CRDs, RBAC, operator) for `kubectl apply -f -`."""
    if write_dir is None:
        click.echo(install_yaml(image), nl=False)
        return
    for rel, text in files().items():
        path = write_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        click.echo(f"wrote {path}")


__all__ = ["files", "install_yaml", "manifests"]
