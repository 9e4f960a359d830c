"""The Rust language plugin."""

from moa.languages.base import Evaluator, LanguagePlugin, MutationRunner, RoutingMarkers
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
    routing=RoutingMarkers(
        fences=("rust", "rs"),
        manifests=("Cargo.toml", "Cargo.lock", "build.rs", "rust-toolchain.toml"),
        patterns={
            r"thread '[^']+' panicked at": 4,
            r"error\[E\d{4}\]": 4,
            r"-->\s+\S+\.rs:\d+": 4,
            r"\b(cargo (build|test|run|clippy)|rustc|borrow checker)\b": 2,
            r"&'\w+|<'\w+>": 2,
            r"\bmatch\s+[\w.]+\s*\{": 2,
            r"\b\w+!\(": 2,
            r"\bmove\s*\|": 2,
            r"\bpub\s+(trait|mod|use)\b|^\s*mod\s+\w+": 2,
            r"^\s*use\s+\w+(::[\w{}*, ]+)+;": 2,
            r"::<|::new\(": 2,
            r"&(mut\s+)?self\b": 2,
            r"\b(Vec|Option|Result|Box|HashMap)<": 1,
            r"\.unwrap\(\)|\?;": 1,
            r"\bSome\(|\bOk\(|\bErr\(": 1,
        },
    ),
    evaluator=_evaluator,
    mutation_runner=_mutation_runner,
    default_sources=SOURCES,
)
