"""The TypeScript language plugin."""

from moa.languages.base import Evaluator, LanguagePlugin, MutationRunner, RoutingMarkers
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
    routing=RoutingMarkers(
        fences=("typescript", "ts", "tsx"),
        manifests=(
            "tsconfig.json",
            "package.json",
            "package-lock.json",
            "vitest.config.ts",
            "jest.config.ts",
        ),
        patterns={
            r"error TS\d{4}": 4,
            r"\bat .+\([^()]+\.(?:ts|js|tsx):\d+:\d+\)": 3,
            r"\b(npm (install|test|run)|npx|tsc|node_modules)\b": 2,
            r"===|!==": 2,
            r"\b(describe|it|test)\(['\"]": 2,
            r"\bexpect\(.+\)\.to\w+\(": 2,
            r"\btypeof\s+\w+\s*===": 2,
            r"\bexport\s+default\b|\bimport\s+type\b": 2,
            r"\bPromise<|\bunknown\b": 2,
            r"^\s*\w+\?:\s*\w+": 2,
            r"\b(private|readonly|public)\s+\w+": 1,
            r"\b(const|let)\s+\w+\s*(:\s*[\w<>\[\]| ]+)?\s*=": 1,
            r"\)\s*:\s*[\w<>\[\]|]+\s*(=>|\{)": 2,
            r"\bnew\s+[A-Z]\w*[(<]": 1,
            r"\bimport\s+\{[^}]*\}\s+from\b": 2,
            r"\b\w+\.addEventListener\(|\bconsole\.log\(": 2,
            r"^\s*enum\s+\w+\s*\{\s*$(?:\s*\w+\s*=)": 2,
        },
    ),
    evaluator=_evaluator,
    mutation_runner=_mutation_runner,
    default_sources=SOURCES,
)
