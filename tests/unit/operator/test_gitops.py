"""The Argo CD health checks run in a real Lua interpreter (lupa) over Argo CD-style test cases,
and the argocd-cm patch embeds exactly the tested scripts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

lupa = pytest.importorskip("lupa", reason="lupa (a Lua runtime) is in the dev extra")

ARGO = Path(__file__).parents[3] / "manifests" / "gitops" / "argocd"
CASES = yaml.safe_load((ARGO / "health_test.yaml").read_text())["tests"]


def to_lua(rt: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return rt.table_from({k: to_lua(rt, v) for k, v in value.items()})
    if isinstance(value, list):
        return rt.table_from([to_lua(rt, v) for v in value])
    return value


def health(script: str, obj: dict[str, Any]) -> dict[str, str]:
    rt = lupa.LuaRuntime(unpack_returned_tuples=True)
    rt.globals().obj = to_lua(rt, obj)
    result = rt.execute((ARGO / script).read_text())
    return {"status": result["status"], "message": result["message"]}


@pytest.mark.parametrize("case", CASES, ids=[c["inputPath"] for c in CASES])
def test_health_check(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((ARGO / case["inputPath"]).read_text())
    assert health(case["script"], obj) == case["healthStatus"]


def test_argocd_cm_patch_embeds_the_tested_scripts() -> None:
    cm = yaml.safe_load((ARGO / "argocd-cm-patch.yaml").read_text())
    data = cm["data"]
    assert (
        data["resource.customizations.health.moa.dev_AdapterTraining"]
        == (ARGO / "health-adaptertraining.lua").read_text()
    )
    assert data["resource.customizations.health.moa.dev_Adapter"] == (ARGO / "health-adapter.lua").read_text()
