"""Which mutants to run: a seeded draw spread over files, functions and bug classes.

Why not the first N: tools list mutants in file order, so a cap of N once took all of a package's
mutants from one folder (and none of them was caught). Here every level is shuffled with the seed
and the draw goes round-robin: one file after another, inside a file one function after another,
inside a function one bug class after another. Any cap then yields a spread, and the same seed
always yields the same sample.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

# The bug classes plugins map their tools' operators to are moa.api.training.BugClass.


def stratified(items: Sequence[T], n: int | None, seed: int, key: Callable[[T], Sequence[Any]]) -> list[T]:
    """Up to `n` items (all when None), drawn round-robin over the levels of `key(item)`."""
    rng = random.Random(seed)

    def order(group: list[T], depth: int) -> list[T]:
        if not group or depth == len(key(group[0])):
            return rng.sample(group, len(group))
        children: dict[Any, list[T]] = {}
        for item in group:
            children.setdefault(key(item)[depth], []).append(item)
        parts = [order(children[k], depth + 1) for k in sorted(children, key=str)]
        rng.shuffle(parts)
        merged: list[T] = []
        for i in range(max(len(p) for p in parts)):
            merged += [p[i] for p in parts if i < len(p)]
        return merged

    drawn = order(list(items), 0)
    return drawn if n is None else drawn[:n]


_BOUNDARY = ({"<", "<="}, {">", ">="})
_COMPARISON = {"<", "<=", ">", ">=", "==", "!=", "===", "!=="}
_BOOLEAN = {"&&", "||", "??", "and", "or"}
_ARITHMETIC = {"+", "-", "*", "/", "%", "**", "&", "|", "^", "<<", ">>", ">>>", "&^", "++", "--"}


def operator_swap_class(old: str, new: str) -> str:
    """The bug class of one operator replaced by another (`<` -> `<=` is a boundary, `==` -> `!=`
    a comparison, `&&` -> `||` boolean logic), for the C-family operators most tools swap."""
    pair = {old.rstrip("="), new.rstrip("=")} if old.endswith("=") and new.endswith("=") else {old, new}
    if any({old, new} <= b for b in _BOUNDARY):
        return "boundary"
    if {old, new} <= _COMPARISON:
        return "comparison"
    if {old, new} <= _BOOLEAN:
        return "boolean"
    if pair <= _ARITHMETIC:  # compound assignments (`+=` -> `-=`) count as their operator
        return "arithmetic"
    return "other"
