"""Kubeflow and JobSet CRDs, read from the real upstream Go modules.

The operator's workload adapters create PyTorchJobs (Kubeflow training-operator v1) and TrainJobs
(Kubeflow trainer v2, which runs on JobSet). The CRD YAML ships inside each module's zip, so the
Go module proxy gives us the exact upstream schemas without GitHub. Only the CRDs are installed;
the Kubeflow/JobSet controllers run only as addons (moa/dev/addons.py, docs/cluster.md).
"""

from __future__ import annotations

from pathlib import Path

from moa.dev.k8s_build import module_dir

TRAINING_OPERATOR_VERSION = "v1.8.1"
TRAINER_VERSION = "v2.0.0"
JOBSET_VERSION = "v0.8.2"  # the version trainer v2.0.0 requires in its go.mod

# (module, version, CRD files inside the module)
SOURCES = (
    (
        "github.com/kubeflow/training-operator",
        TRAINING_OPERATOR_VERSION,
        ("manifests/base/crds/kubeflow.org_pytorchjobs.yaml",),
    ),
    (
        "github.com/kubeflow/trainer/v2",
        TRAINER_VERSION,
        (
            "manifests/base/crds/trainer.kubeflow.org_trainjobs.yaml",
            "manifests/base/crds/trainer.kubeflow.org_trainingruntimes.yaml",
            "manifests/base/crds/trainer.kubeflow.org_clustertrainingruntimes.yaml",
        ),
    ),
    ("sigs.k8s.io/jobset", JOBSET_VERSION, ("config/components/crd/bases/jobset.x-k8s.io_jobsets.yaml",)),
)

NAMES = (
    "pytorchjobs.kubeflow.org",
    "trainjobs.trainer.kubeflow.org",
    "trainingruntimes.trainer.kubeflow.org",
    "clustertrainingruntimes.trainer.kubeflow.org",
    "jobsets.jobset.x-k8s.io",
)


def crd_files() -> list[Path]:
    """Local paths of the upstream CRD YAML files (downloads the modules once into the Go cache)."""
    files = []
    for module, version, paths in SOURCES:
        root = module_dir(module, version)
        for rel in paths:
            path = root / rel
            if not path.is_file():
                raise FileNotFoundError(f"{module}@{version} has no {rel}")
            files.append(path)
    return files
