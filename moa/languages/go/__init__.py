"""The Go language plugin."""

from moa.languages.base import Evaluator, LanguagePlugin, MutationRunner
from moa.languages.go.offline import OFFLINE_CACHE
from moa.languages.go.sources import SOURCES


def _evaluator() -> Evaluator:
    from moa.languages.go.evaluator import GoEvaluator

    return GoEvaluator()


def _mutation_runner() -> MutationRunner:
    from moa.languages.go.mutation import GoMutationRunner

    return GoMutationRunner()


plugin = LanguagePlugin(
    name="go",
    extensions=(".go",),
    markers={
        r"^package\s+\w+": 2,
        r"\bfunc\s+(\(\w+\s+\*?\w+\)\s*)?\w+\(": 2,
        r":=": 1,
        r"\berr\s*!=\s*nil\b": 2,
        r"^import\s+\(": 1,
    },
    evaluator=_evaluator,
    mutation_runner=_mutation_runner,
    default_sources=SOURCES,
    offline_cache=OFFLINE_CACHE,
)
