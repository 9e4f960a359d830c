"""Rust functions from the tree-sitter Rust grammar: `name`, `Type::name` inside an impl
(of the type, trait impls included), `Trait::name` for a trait's default methods."""

from __future__ import annotations

from moa.languages.base import FunctionSpan
from moa.languages.syntax import Node, ancestor, function_spans, text_of


def _name(node: Node) -> str | None:
    if node.type != "function_item":
        return None
    name = text_of(node.child_by_field_name("name"))
    owner = ancestor(node, "impl_item", "trait_item", "function_item")
    if owner is None or owner.type == "function_item":
        return name
    kind = owner.child_by_field_name("type" if owner.type == "impl_item" else "name")
    while kind is not None and kind.type in ("generic_type", "reference_type", "scoped_type_identifier"):
        kind = kind.child_by_field_name("type") or kind.child_by_field_name("name")
    return f"{text_of(kind)}::{name}"


def functions(path: str, text: str) -> list[FunctionSpan]:
    import tree_sitter_rust

    return function_spans(tree_sitter_rust.language, text, _name)
