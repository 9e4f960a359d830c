"""The Go language plugin."""

import re

from moa.languages.base import Idiom, LanguagePlugin, lazy
from moa.languages.go.functions import functions
from moa.languages.go.offline import OFFLINE_CACHE
from moa.languages.go.sources import SOURCES

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
    evaluator=lazy("moa.languages.go.evaluator:GoEvaluator"),
    mutation_runner=lazy("moa.languages.go.mutation:GoMutationRunner"),
    functions=functions,
    default_sources=SOURCES,
    failing_test_patterns=(
        re.compile(r"^\s*--- FAIL: (\S+)", re.M),  # go test
    ),
    definition_pattern=r"func (\([^)]*\) )?{name}\b",
    idioms=(
        Idiom(re.compile(r"fmt\.Errorf\((?!.*%w).*\berr\b"), "error not wrapped with %w"),
        Idiom(re.compile(r"errors\.New\(\s*err\.Error\(\)\s*\)"), "error re-created, not wrapped"),
        Idiom(re.compile(r"\bpanic\("), "panic instead of an error"),
    ),
    dependency_dirs=("vendor",),
    offline_cache=OFFLINE_CACHE,
)
