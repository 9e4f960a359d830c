"""The TypeScript language plugin."""

from moa.languages.base import Evaluator, LanguagePlugin


def _evaluator() -> Evaluator:
    from moa.languages.typescript.evaluator import TypeScriptEvaluator

    return TypeScriptEvaluator()


plugin = LanguagePlugin(
    name="typescript",
    extensions=(".ts", ".tsx", ".mts", ".cts"),
    markers={r"\binterface\s+\w+": 2, r":\s*(string|number|boolean)\b": 2, r"\bexport\s+(const|function|type|interface)\b": 2, r"=>": 1, r"\bimport\s+.*\s+from\s+['\"]": 1},
    evaluator=_evaluator,
)
