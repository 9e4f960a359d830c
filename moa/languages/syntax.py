"""Function spans from tree-sitter grammars, for languages whose parser is not Python's own.

Why tree-sitter: the grammars ship as wheels on PyPI (tree-sitter-go, -rust, -typescript), so
checking where a mutant sits needs no compiler toolchain at import time and parses in
microseconds; a plugin says which nodes are functions and how it qualifies their names.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from moa.languages.base import FunctionSpan

Node = Any  # tree_sitter.Node: the package is imported only when a file is parsed


@cache
def _parser(language: Callable[[], object]) -> Any:
    import tree_sitter

    return tree_sitter.Parser(tree_sitter.Language(language()))


def function_spans(
    language: Callable[[], object], text: str, name_of: Callable[[Node], str | None]
) -> list[FunctionSpan]:
    """Every node of `text` that `name_of` names, as a span, in file order."""
    tree = _parser(language).parse(text.encode())
    out = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        name = name_of(node)
        if name:
            out.append(FunctionSpan(name, node.start_point.row + 1, node.end_point.row + 1))
        stack.extend(reversed(node.children))
    return sorted(out, key=lambda s: (s.start, -s.end))


def text_of(node: Node | None) -> str:
    return "" if node is None else bytes(node.text).decode(errors="replace")


def ancestor(node: Node, *types: str) -> Node | None:
    """The nearest enclosing node of one of `types`."""
    node = node.parent
    while node is not None and node.type not in types:
        node = node.parent
    return node
