"""Java methods and constructors from the tree-sitter Java grammar, named as PIT names the
mutated method: `Class.method`, nested classes dotted (`CommandLine.Builder.build`), a
constructor by its class's name (`Option.Option`). moa's diff check uses them to confirm that
a mutant's diff touches only the method its record names."""

from __future__ import annotations

from moa.languages.base import FunctionSpan
from moa.languages.syntax import Node, function_spans, text_of

_TYPES = ("class_declaration", "interface_declaration", "enum_declaration", "record_declaration")


def _name(node: Node) -> str | None:
    if node.type not in ("method_declaration", "constructor_declaration", "compact_constructor_declaration"):
        return None
    owners = []
    parent = node.parent
    while parent is not None:
        if parent.type in _TYPES:
            owners.append(text_of(parent.child_by_field_name("name")))
        elif parent.type in ("object_creation_expression", "lambda_expression"):
            return None  # an anonymous class's method: PIT names it by a synthetic class
        parent = parent.parent
    return ".".join([*reversed(owners), text_of(node.child_by_field_name("name"))]) if owners else None


def functions(path: str, text: str) -> list[FunctionSpan]:
    import tree_sitter_java

    return function_spans(tree_sitter_java.language, text, _name)
