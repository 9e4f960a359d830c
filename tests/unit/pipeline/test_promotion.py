"""One promotion policy: its decisions, and `moa registry promote` as retire-then-promote."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from moa.api.adapter import Adapter, AdapterSpec, AdapterStage, AdapterStatus
from moa.api.gates import check
from moa.cli import cli
from moa.pipeline import promotion
from moa.pipeline.registry import LocalRegistry


def adapter(
    name: str, stage: AdapterStage = "trained", passed: bool = True, language: str = "python"
) -> Adapter:
    gate = check("eval.pass_at_1", 0.6 if passed else 0.2, ">=", 0.5)
    return Adapter(
        metadata={"name": name, "labels": {"moa.dev/language": language}},
        spec=AdapterSpec(language=language, base_model="base", artifact=f"adapters/{name}", stage=stage),
        status=AdapterStatus(stage=stage, gates=[gate]),
    )


def condition(a: Adapter, type_: str) -> tuple[str, str]:
    c = next(c for c in (a.status.conditions if a.status else []) if c.type == type_)
    return c.status, c.reason


def test_production_needs_the_eval_targets() -> None:
    d = promotion.decide(adapter("new", passed=False), "production", [])
    assert d == promotion.Decision("trained", "TargetsNotMet", "eval.pass_at_1: 0.2 >= 0.5 failed (abort)")
    unevaluated = adapter("raw").model_copy(update={"status": None})
    assert promotion.decide(unevaluated, "production", []).blocked == "TargetsNotMet"


def test_a_second_production_adapter_of_a_language_is_blocked_until_the_first_is_retired_in_git() -> None:
    old, new = adapter("old", "production"), adapter("new")
    d = promotion.decide(new, "production", [old, adapter("go-one", "production", language="go")])
    assert (d.stage, d.blocked) == ("trained", "AnotherProduction") and "old is production" in d.message
    blocked = promotion.apply(new, d)
    assert condition(blocked, "PromotionBlocked") == ("True", "AnotherProduction")
    assert condition(blocked, "Promoted") == ("False", "AnotherProduction")
    assert old.spec.stage == "production" and new.spec.stage == "trained"  # the policy edits no spec
    # Git retires `old` (its spec), before the controller caught up with its status: no rival.
    old.spec.stage = "retired"
    assert promotion.decide(new, "production", [old]) == promotion.Decision("production")


def test_other_stages_are_always_reachable() -> None:
    assert promotion.decide(adapter("x", "production", passed=False), "retired", []).stage == "retired"


def test_registry_promote_retires_the_production_adapter_then_promotes_and_says_so(tmp_path: Path) -> None:
    reg = LocalRegistry(tmp_path)
    reg.save(adapter("old", "production"))
    reg.save(adapter("new"))
    reg.save(adapter("go-one", "production", language="go"))
    result = CliRunner().invoke(cli, ["registry", "promote", "new", "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["old: retired (was production for python)", "new: production"]
    stages = {a.metadata.name: (a.spec.stage, a.status.stage if a.status else None) for a in reg.list()}
    assert stages == {
        "old": ("retired", "retired"),
        "new": ("production", "production"),
        "go-one": ("production", "production"),
    }
    assert condition(reg.get("new"), "Promoted") == ("True", "Stage")


def test_registry_promote_with_failed_targets_changes_nothing(tmp_path: Path) -> None:
    reg = LocalRegistry(tmp_path)
    reg.save(adapter("old", "production"))
    reg.save(adapter("bad", passed=False))
    before = {p.name: p.read_bytes() for p in reg.dir.iterdir()}
    result = CliRunner().invoke(cli, ["registry", "promote", "bad", "--workdir", str(tmp_path)])
    assert result.exit_code != 0 and "refused: eval.pass_at_1: 0.2 >= 0.5 failed" in result.output
    assert {p.name: p.read_bytes() for p in reg.dir.iterdir()} == before
