"""Python functions from the standard `ast`: `name`, `Class.method`, `outer.inner` when nested."""

from __future__ import annotations

import ast

from moa.languages.base import FunctionSpan


def functions(path: str, text: str) -> list[FunctionSpan]:
    out: list[FunctionSpan] = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = prefix + node.name
                if not isinstance(node, ast.ClassDef):
                    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                    out.append(FunctionSpan(name, start, node.end_lineno or node.lineno))
                visit(node.body, name + ".")
            else:  # functions under if/try/with at module or class level
                for field in ("body", "orelse", "finalbody", "handlers"):
                    visit([n for n in getattr(node, field, []) if isinstance(n, ast.stmt)], prefix)

    visit(ast.parse(text, filename=path).body, "")
    return sorted(out, key=lambda s: (s.start, -s.end))
