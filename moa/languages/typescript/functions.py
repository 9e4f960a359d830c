"""TypeScript/JavaScript functions from the tree-sitter TypeScript grammars (TSX for .tsx/.jsx):
declarations, methods and arrow functions or function expressions bound to a name, qualified
by their class (`Class.method`)."""

from __future__ import annotations

from moa.languages.base import FunctionSpan
from moa.languages.syntax import Node, ancestor, function_spans, text_of

_DECLARATIONS = ("function_declaration", "generator_function_declaration", "method_definition")
_VALUES = ("arrow_function", "function_expression", "function", "generator_function")


def _name(node: Node) -> str | None:
    if node.type in _DECLARATIONS:
        name = text_of(node.child_by_field_name("name"))
    elif node.type in ("variable_declarator", "public_field_definition", "pair"):
        value = node.child_by_field_name("value")
        if value is None or value.type not in _VALUES:
            return None
        name = text_of(node.child_by_field_name("name") or node.child_by_field_name("key"))
    else:
        return None
    owner = ancestor(node, "class_declaration", "class", "abstract_class_declaration")
    owner_name = text_of(owner.child_by_field_name("name")) if owner is not None else ""
    return f"{owner_name}.{name}" if owner_name and node.type != "variable_declarator" else name


def functions(path: str, text: str) -> list[FunctionSpan]:
    import tree_sitter_typescript

    tsx = path.endswith((".tsx", ".jsx"))
    grammar = tree_sitter_typescript.language_tsx if tsx else tree_sitter_typescript.language_typescript
    return function_spans(grammar, text, _name)
