"""The Python language plugin."""

from moa.languages.base import Evaluator, LanguagePlugin, MutationRunner
from moa.languages.python.offline import OFFLINE_CACHE
from moa.languages.python.sources import DEFAULT_SOURCES


def _evaluator() -> Evaluator:
    from moa.languages.python.evaluator import PythonEvaluator

    return PythonEvaluator()


def _mutation_runner() -> MutationRunner:
    from moa.languages.python.mutation import MutmutRunner

    return MutmutRunner()


plugin = LanguagePlugin(
    name="python",
    extensions=(".py",),
    markers={
        r"^\s*def\s+\w+\(.*\)\s*(->.*)?:": 2,
        r"^\s*import\s+\w+": 1,
        r"^\s*from\s+\w+(\.\w+)*\s+import\b": 2,
        r"\bself\b": 1,
        r"^\s*class\s+\w+.*:\s*$": 1,
    },
    evaluator=_evaluator,
    mutation_runner=_mutation_runner,
    default_sources=DEFAULT_SOURCES,
    offline_cache=OFFLINE_CACHE,
)
