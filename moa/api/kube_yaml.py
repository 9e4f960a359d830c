"""YAML read the way `kubectl` and the API server read it (sigs.k8s.io/yaml), not as PyYAML's
YAML 1.1 resolver does.

The difference that bites: PyYAML resolves a float only with a dot and a signed exponent, so
`learningRate: 3e-5` (how people write it) becomes the string "3e-5" and the offline validator
refused what the server accepts. Here a plain scalar is a float when Go's number syntax says so
(`3e-5`, `1E3`, `.5`), an int per YAML 1.1 minus the sexagesimal form (`1:20` stays a string, as
in Go). `.nan`/`.inf` still load as floats, so the validator can name the field holding them:
neither JSON nor the API server accept them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_INT = re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$")


class KubeLoader(yaml.SafeLoader):
    """SafeLoader with the API server's number resolution."""


# Copy the resolver table without PyYAML's int and float rules, then add ours (int first: an int
# also matches the float pattern).
KubeLoader.yaml_implicit_resolvers = {
    first: [
        (tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
KubeLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
KubeLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    text = str(loader.construct_scalar(node)).replace("_", "")  # type: ignore[arg-type]
    lowered = text.lower()
    if lowered.lstrip("+-") == ".inf":
        return float(lowered.replace(".inf", "inf"))
    if lowered == ".nan":
        return float("nan")
    return float(text)


KubeLoader.add_constructor("tag:yaml.org,2002:float", _float)


def load(text: str) -> Any:
    return yaml.load(text, Loader=KubeLoader)


def load_all(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=KubeLoader))


def load_file(path: str | Path) -> Any:
    return load(Path(path).read_text())
