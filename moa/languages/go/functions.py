"""Go functions and methods from the tree-sitter Go grammar: `Name`, or `Recv.Name` for methods."""

from __future__ import annotations

from moa.languages.base import FunctionSpan
from moa.languages.syntax import Node, function_spans, text_of


def _name(node: Node) -> str | None:
    if node.type == "function_declaration":
        return text_of(node.child_by_field_name("name"))
    if node.type != "method_declaration":
        return None
    receiver = node.child_by_field_name("receiver")
    kind = receiver.named_children[0].child_by_field_name("type") if receiver.named_children else None
    while kind is not None and kind.type in ("pointer_type", "generic_type", "parenthesized_type"):
        kind = kind.child_by_field_name("type") or (kind.named_children or [None])[0]
    name = text_of(node.child_by_field_name("name"))
    return f"{text_of(kind)}.{name}" if kind is not None else name


def functions(path: str, text: str) -> list[FunctionSpan]:
    import tree_sitter_go

    return function_spans(tree_sitter_go.language, text, _name)
