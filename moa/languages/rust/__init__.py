"""The Rust language plugin."""

from moa.languages.base import Evaluator, LanguagePlugin, MutationRunner
from moa.languages.rust.offline import OFFLINE_CACHE
from moa.languages.rust.sources import SOURCES


def _evaluator() -> Evaluator:
    from moa.languages.rust.evaluator import RustEvaluator

    return RustEvaluator()


def _mutation_runner() -> MutationRunner:
    from moa.languages.rust.mutation import RustMutationRunner

    return RustMutationRunner()


plugin = LanguagePlugin(
    name="rust",
    extensions=(".rs",),
    markers={
        r"\bfn\s+\w+\s*[<(]": 2,
        r"\blet\s+mut\b": 2,
        r"\bimpl\b": 1,
        r"::": 1,
        r"\bpub\s+(fn|struct|enum)\b": 2,
        r"#\[derive": 2,
    },
    evaluator=_evaluator,
    mutation_runner=_mutation_runner,
    default_sources=SOURCES,
    offline_cache=OFFLINE_CACHE,
)
