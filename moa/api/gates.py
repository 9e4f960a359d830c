"""Gates are data: a threshold in the spec, a measured value, and one comparator.

Every stage that gates its output (data gate, SFT, IPO, GRPO, eval) measures its metrics, then
calls `check` once per threshold from its spec section and records the `GateResult`s in
metrics.json and in the resource status. There is no gate logic anywhere else, so a gate that
failed in status always says exactly which value missed which threshold.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable
from typing import Literal

from pydantic import Field

from moa.api.common import Model

Op = Literal["<", "<=", ">", ">=", "=="]
Severity = Literal["abort", "warn"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}


class GateResult(Model):
    """One checked threshold. `passed` is False for a missing/NaN value: absent is not passing."""

    name: str = Field(max_length=128)
    value: float | None = None
    threshold: float
    op: Op
    passed: bool
    severity: Severity = "abort"

    def describe(self) -> str:
        """One line, e.g. `ipo.kl: 0.62 < 0.5 failed (abort)`."""
        value = "absent" if self.value is None else f"{self.value:.4g}"
        verdict = "passed" if self.passed else f"failed ({self.severity})"
        return f"{self.name}: {value} {self.op} {self.threshold:.4g} {verdict}"


def check(
    name: str, value: float | None, op: Op, threshold: float, severity: Severity = "abort"
) -> GateResult:
    """Compare `value op threshold`. A value that was not measured (None or NaN) fails the gate."""
    if op not in _OPS:
        raise ValueError(f"unknown gate operator {op!r}; expected one of {sorted(_OPS)}")
    measured = value is not None and not math.isnan(value)
    passed = measured and _OPS[op](float(value), float(threshold))  # type: ignore[arg-type]
    return GateResult(
        name=name,
        value=float(value) if measured else None,  # type: ignore[arg-type]
        threshold=float(threshold),
        op=op,
        passed=passed,
        severity=severity,
    )


def blocking(results: Iterable[GateResult]) -> list[GateResult]:
    """The failed gates that stop the pipeline (severity abort)."""
    return [r for r in results if not r.passed and r.severity == "abort"]
