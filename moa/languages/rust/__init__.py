"""The Rust language plugin."""

import re

from moa.languages.base import Idiom, LanguagePlugin, lazy
from moa.languages.rust.functions import functions
from moa.languages.rust.offline import OFFLINE_CACHE
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
    offline_cache=OFFLINE_CACHE,
)
