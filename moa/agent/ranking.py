"""Rank candidate patches for one task into chosen/rejected preference pairs.

The order is the judge's first, taste second:

1. hard gates, from the evaluator's outcome: clean > lint warnings > tests fail > does not
   compile > does not apply > invalid tool call. Nothing soft can lift a candidate over
   one that is better here.
2. soft criteria within one hard tier: fewer idiom violations in the added code (each
   language plugin's `idioms`, the roadmap's: `Result`/`?` over `unwrap()`, type hints, no
   `any`, errors wrapped with `%w`), then fewer files touched, then
   a smaller diff. Idioms come first because they are what a language adapter is for; size
   is the tie-break between equally idiomatic fixes.

Candidates with equal keys share a rank and never form a pair. A pair is *informative*
when the chosen one wins on the hard gates, or both pass the tests and the chosen one wins
on taste; preferring the smaller of two broken patches would teach nothing. The sampling
that produces candidates lives in the trainer; this module only judges.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from moa.api.records import EvalOutcome
from moa.harmony.patch import AddFile, DeleteFile, PatchError, UpdateFile, parse_patch
from moa.languages import registry

TIERS = ("invalid_tool_call", "patch_failed", "compile_error", "tests_failed", "lint_warnings", "clean")
PASSING = TIERS.index("lint_warnings")


@dataclass(frozen=True)
class PatchStats:
    files: int
    changed_lines: int
    idiom_violations: tuple[str, ...]


def patch_stats(patch_text: str) -> PatchStats | None:
    """Size and idiom findings of an apply_patch text; None when it does not parse."""
    try:
        patch = parse_patch(patch_text)
    except PatchError:
        return None
    changed = 0
    findings: list[str] = []
    for op in patch.operations:
        if isinstance(op, AddFile):
            added = op.content.splitlines()
            changed += len(added)
        elif isinstance(op, DeleteFile):
            added = []
            changed += 1
        else:
            assert isinstance(op, UpdateFile)
            added = [text for chunk in op.chunks for o, text in chunk.lines if o == "+"]
            changed += sum(o != " " for chunk in op.chunks for o, _ in chunk.lines)
        plugin = registry.for_file(op.path)
        idioms = plugin.idioms if plugin is not None else ()
        findings += [f"{op.path}: {i.breaks}" for line in added for i in idioms if i.pattern.search(line)]
    return PatchStats(len({op.path for op in patch.operations}), changed, tuple(findings))


@dataclass(frozen=True)
class Ranked:
    index: int  # position in the candidates given
    rank: int  # 0 is best; equal keys, equal rank
    outcome: str
    stats: PatchStats | None

    @property
    def key(self) -> tuple[float, ...]:
        tier = -TIERS.index(self.outcome)
        if self.stats is None:
            return (tier, math.inf, math.inf, math.inf)
        return (tier, len(self.stats.idiom_violations), self.stats.files, self.stats.changed_lines)

    @property
    def passes(self) -> bool:
        return TIERS.index(self.outcome) >= PASSING


def rank(candidates: Sequence[str], outcomes: Sequence[EvalOutcome]) -> list[Ranked]:
    """Candidates (apply_patch texts) best first, with their outcomes from the evaluator."""
    if len(candidates) != len(outcomes):
        raise ValueError(f"{len(candidates)} candidates but {len(outcomes)} outcomes")
    items = [
        Ranked(i, 0, o.outcome, patch_stats(c))
        for i, (c, o) in enumerate(zip(candidates, outcomes, strict=True))
    ]
    items.sort(key=lambda r: (r.key, r.index))
    ranked: list[Ranked] = []
    for r in items:
        if not ranked:
            position = 0
        elif r.key == ranked[-1].key:
            position = ranked[-1].rank
        else:
            position = ranked[-1].rank + 1
        ranked.append(Ranked(r.index, position, r.outcome, r.stats))
    return ranked


@dataclass(frozen=True)
class Preference:
    """One informative preference between two candidates of a task (by index), and why."""

    chosen: int  # candidate indices
    rejected: int
    reason: str


def pairs(candidates: Sequence[str], outcomes: Sequence[EvalOutcome], max_pairs: int = 4) -> list[Preference]:
    """Informative chosen/rejected pairs, the clearest (largest hard-tier gap, then rank gap)
    first, at most `max_pairs`; identical patch texts never pair with each other."""
    ranked = rank(candidates, outcomes)
    found: list[tuple[tuple[int, int], Preference]] = []
    for a in ranked:
        for b in ranked:
            if a.rank >= b.rank or candidates[a.index].strip() == candidates[b.index].strip():
                continue
            tier_gap = TIERS.index(a.outcome) - TIERS.index(b.outcome)
            if tier_gap == 0 and not a.passes:
                continue
            found.append(
                ((-tier_gap, a.rank - b.rank), Preference(a.index, b.index, _reason(a, b, tier_gap)))
            )
    found.sort(key=lambda f: f[0])
    return [p for _, p in found[:max_pairs]]


def _reason(a: Ranked, b: Ranked, tier_gap: int) -> str:
    if tier_gap:
        return f"{a.outcome} over {b.outcome}"
    sa, sb = a.stats, b.stats
    assert sa is not None and sb is not None
    if len(sa.idiom_violations) != len(sb.idiom_violations):
        return f"fewer idiom violations ({len(sa.idiom_violations)} vs {len(sb.idiom_violations)}: {', '.join(sb.idiom_violations[:2])})"
    if sa.files != sb.files:
        return f"fewer files touched ({sa.files} vs {sb.files})"
    return f"smaller diff ({sa.changed_lines} vs {sb.changed_lines} changed lines)"
