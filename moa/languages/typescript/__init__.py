"""The TypeScript language plugin."""

from moa.languages.base import Evaluator, LanguagePlugin, MutationRunner
from moa.languages.typescript.offline import OFFLINE_CACHE
from moa.languages.typescript.sources import SOURCES


def _evaluator() -> Evaluator:
    from moa.languages.typescript.evaluator import TypeScriptEvaluator

    return TypeScriptEvaluator()


def _mutation_runner() -> MutationRunner:
    from moa.languages.typescript.mutation import TypeScriptMutationRunner

    return TypeScriptMutationRunner()


plugin = LanguagePlugin(
    name="typescript",
    extensions=(".ts", ".tsx", ".mts", ".cts"),
    markers={
        r"\binterface\s+\w+": 2,
        r":\s*(string|number|boolean)\b": 2,
        r"\bexport\s+(const|function|type|interface)\b": 2,
        r"=>": 1,
        r"\bimport\s+.*\s+from\s+['\"]": 1,
    },
    evaluator=_evaluator,
    mutation_runner=_mutation_runner,
    default_sources=SOURCES,
    offline_cache=OFFLINE_CACHE,
)
