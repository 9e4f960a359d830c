"""The same YAML files go to `moa manifests validate` and, through kubectl (which parses YAML
as the API server's clients do), to the real API server: same verdict, and where the server
names a field, the same field. `.nan`/`.inf` never reach a field on the server (JSON cannot
carry them, so the request is refused whole); offline they are refused naming the field."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "api"))
from yaml_parity_cases import CASES, text

from moa.api.validate import validate_text

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize(("name", "body", "field"), CASES, ids=[c[0] for c in CASES])
def test_offline_and_server_agree(kubectl, namespace: str, name: str, body: str, field: str | None) -> None:
    doc = text(name, body)
    [offline] = validate_text(doc)
    server = kubectl("apply", "--server-side", "-n", namespace, "-f", "-", check=False, input=doc)
    assert (server.returncode == 0) == (not offline.errors), (offline.errors, server.stderr)
    if field is not None:
        assert any(e.startswith(f"{field}: ") for e in offline.errors), offline.errors
        non_finite = any("not a finite number" in e for e in offline.errors)
        assert non_finite or field in server.stderr, server.stderr
