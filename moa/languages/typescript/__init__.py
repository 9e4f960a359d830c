"""The TypeScript language plugin."""

import re

from moa.languages.base import Idiom, LanguagePlugin, RoutingMarkers, lazy
from moa.languages.typescript.functions import functions
from moa.languages.typescript.samples import CODE_SAMPLES
from moa.languages.typescript.sources import SOURCES

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
    evaluator=lazy("moa.languages.typescript.evaluator:TypeScriptEvaluator"),
    mutation_runner=lazy("moa.languages.typescript.mutation:TypeScriptMutationRunner"),
    functions=functions,
    default_sources=SOURCES,
    failing_test_patterns=(
        re.compile(r"^not ok \d+ - (.+?)\s*(?:#.*)?$", re.M),  # TAP (node --test, tape)
        re.compile(r"^\s*● (.+?)\s*$", re.M),  # jest
        re.compile(r"^\s*(?:×|✕|✗) (.+?)(?: \d+ms)?\s*$", re.M),  # vitest / jest / mocha markers
    ),
    definition_pattern=r"(?:\bfunction\s*\*?\s*{name}\b|\b(?:const|let|var)\s+{name}\s*=|^\s*(?:(?:public|private|protected|static|async|get|set)\s+)*{name}\s*(?:<[^>]*>)?\()",
    idioms=(
        Idiom(re.compile(r":\s*any\b|\bas\s+any\b|<any>|\bany\[\]"), "`any` type"),
        Idiom(re.compile(r"@ts-ignore|@ts-nocheck"), "type check suppressed"),
    ),
    dependency_dirs=("node_modules",),
    dependency_locks=("node_modules/.package-lock.json",),
    build_dirs=("dist", "build", "coverage", ".next", ".turbo"),
    code_samples=CODE_SAMPLES,
)
