"""The Go language plugin."""

import re

from moa.languages.base import Idiom, LanguagePlugin, RoutingMarkers, lazy
from moa.languages.go.functions import functions
from moa.languages.go.samples import CODE_SAMPLES
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
    routing=RoutingMarkers(
        fences=("go", "golang"),
        manifests=("go.mod", "go.sum", "go.work"),
        patterns={
            r"^goroutine \d+ \[": 4,
            r"^panic: ": 2,
            r"\S+\.go:\d+(:\d+)?": 3,
            r"\b(go (build|test|run|vet|mod)|gofmt)\b": 2,
            r"\bfunc\b": 2,
            r"\bdefer\b": 2,
            r"\bgo\s+func\b|<-\s*\w|\w+\s*<-": 2,
            r"\bmake\((map|chan|\[\])": 2,
            r"\bfmt\.\w+\(": 2,
            r"\btype\s+\w+\s+(struct|interface)\b": 3,
            r"\b\w+(,\s*\w+)*\s*:=": 2,
            r"\*testing\.T\b": 2,
            r"\brange\s+\w+": 1,
            r"\b(sync|http|os|strings|strconv)\.[A-Z]\w*": 1,
            r"\.\(type\)": 2,
            r"^\s*\"[\w./]+\"\s*$": 1,
            r"\bvar\s+\w+\s+[\w.*\[\]]+": 1,
            r"\bmap\[\w+\]\w+": 2,
        },
    ),
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
    code_samples=CODE_SAMPLES,
)
