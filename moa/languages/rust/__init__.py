"""The Rust language plugin."""

import re

from moa.languages.base import Idiom, LanguagePlugin, RoutingMarkers, lazy
from moa.languages.rust.functions import functions
from moa.languages.rust.samples import CODE_SAMPLES
from moa.languages.rust.sources import SOURCES

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
    evaluator=lazy("moa.languages.rust.evaluator:RustEvaluator"),
    mutation_runner=lazy("moa.languages.rust.mutation:RustMutationRunner"),
    functions=functions,
    default_sources=SOURCES,
    failing_test_patterns=(
        re.compile(r"^test (\S+) \.\.\. FAILED$", re.M),  # cargo test
    ),
    failure_clues=("panicked", "thread '.*' panicked"),
    definition_pattern=r"fn {name}\b",
    idioms=(
        Idiom(re.compile(r"\.unwrap\(\)"), "unwrap() instead of ? / Result"),
        Idiom(re.compile(r"\.expect\("), "expect() instead of ? / Result"),
        Idiom(re.compile(r"\bpanic!\("), "panic! instead of an error"),
    ),
    build_dirs=("target", "mutants"),
    incremental_dirs=("target",),
    code_samples=CODE_SAMPLES,
)
