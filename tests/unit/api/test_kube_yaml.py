"""`moa manifests validate` reads YAML as the API server does: `3e-5` is a number, `.nan` and
`.inf` are refused naming their field, and `moa run`'s loader agrees."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from yaml_parity_cases import CASES, text

from moa.api import kube_yaml
from moa.api.training import load_training
from moa.api.validate import validate_text


@pytest.mark.parametrize(("name", "body", "field"), CASES, ids=[c[0] for c in CASES])
def test_offline_verdict(name: str, body: str, field: str | None) -> None:
    [result] = validate_text(text(name, body))
    if field is None:
        assert result.errors == []
    else:
        assert any(e.startswith(f"{field}: ") for e in result.errors), result.errors


def test_numbers_resolve_like_go_yaml() -> None:
    doc = kube_yaml.load("a: 3e-5\nb: 1:20\nc: 0x1f\nd: .5\ne: '3e-5'\nf: 1_000\ng: 7\n")
    assert doc == {"a": 3e-5, "b": "1:20", "c": 31, "d": 0.5, "e": "3e-5", "f": 1000, "g": 7}
    assert yaml.safe_load("a: 3e-5") == {"a": "3e-5"}  # PyYAML's own loader is left alone


def test_moa_run_loader_accepts_exponents_and_refuses_nan(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(text("good", "  stages:\n    coreAgent:\n      learningRate: 3e-5\n"))
    assert load_training(good).spec.stages.core_agent.learning_rate == 3e-5
    bad = tmp_path / "bad.yaml"
    bad.write_text(text("bad", "  stages:\n    ipo:\n      gates:\n        klAbort: .nan\n"))
    with pytest.raises(ValidationError, match=r"klAbort|kl_abort"):
        load_training(bad)
