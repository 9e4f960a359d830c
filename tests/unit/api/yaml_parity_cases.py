"""YAML texts on which `moa manifests validate` must agree with the API server (used by the unit
test and by tests/cluster/test_yaml_parity.py). (name, YAML text, field refused or None)."""

HEAD = "apiVersion: moa.dev/v1alpha1\nkind: AdapterTraining\nmetadata:\n  name: {name}\nspec:\n  language: rust\n"

CASES: list[tuple[str, str, str | None]] = [
    ("lr-exponent", "  stages:\n    coreAgent:\n      learningRate: 3e-5\n", None),
    ("lr-upper-exponent", "  stages:\n    coreAgent:\n      learningRate: 1E-4\n", None),
    (
        "lr-quoted",
        '  stages:\n    coreAgent:\n      learningRate: "3e-5"\n',
        "spec.stages.coreAgent.learningRate",
    ),
    (
        "gate-nan",
        "  stages:\n    ipo:\n      gates:\n        klAbort: .nan\n",
        "spec.stages.ipo.gates.klAbort",
    ),
    (
        "gate-inf",
        "  stages:\n    ipo:\n      gates:\n        klAbort: .inf\n",
        "spec.stages.ipo.gates.klAbort",
    ),
    (
        "lr-minus-inf",
        "  stages:\n    coreAgent:\n      learningRate: -.Inf\n",
        "spec.stages.coreAgent.learningRate",
    ),
    ("gpus-exponent-int", "  resources:\n    gpus: 1e0\n", None),
    ("gpus-fraction", "  resources:\n    gpus: 1.5\n", "spec.resources.gpus"),
]


def text(name: str, body: str) -> str:
    return HEAD.format(name=name) + body
