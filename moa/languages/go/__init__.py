"""The Go language plugin."""

from moa.languages.base import Evaluator, LanguagePlugin, MutationRunner, RoutingMarkers
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
    evaluator=_evaluator,
    mutation_runner=_mutation_runner,
    default_sources=SOURCES,
)
