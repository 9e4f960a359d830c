"""The Java language plugin for moa, a separate distribution (`pip install ./plugins/moa-java`).

It is found by moa only through its `moa.languages` entry point; nothing inside moa names Java.
Sources come from Maven Central (`maven:GROUP:ARTIFACT@VERSION`, the sources jar plus the
test-sources jar), judged by javac and the JUnit Platform console launcher.
"""

import re

from moa.languages.base import Idiom, LanguagePlugin, RoutingMarkers, lazy
from moa_java.functions import functions
from moa_java.maven import fetch_maven
from moa_java.samples import CODE_SAMPLES
from moa_java.sources import SOURCES

plugin = LanguagePlugin(
    name="java",
    extensions=(".java",),
    markers={
        r"^import\s+java\.": 3,
        r"^package\s+[\w.]+;": 2,
        r"\bpublic\s+(final\s+)?class\s+\w+": 2,
        r"\bSystem\.out\.println\(": 2,
        r"<artifactId>": 2,  # pom.xml
        r"@Override\b": 1,
    },
    routing=RoutingMarkers(
        fences=("java",),
        manifests=("pom.xml", "build.gradle", "build.gradle.kts"),
        patterns={
            r"^import\s+java(x)?\.": 4,
            r"^\s+at [\w$.]+\([\w$]+\.java:\d+\)": 4,  # a stack trace frame
            r"^Exception in thread \"": 3,
            r"\S+\.java:\d+: (error|warning): ": 3,  # javac
            r"\b(mvn|javac|gradle)\b": 2,
            r"\bpublic\s+static\s+void\s+main\(String": 3,
            r"\b(private|protected|public)\s+(static\s+)?(final\s+)?[\w<>\[\]]+\s+\w+\s*\(": 2,
            r"\bnew\s+[A-Z]\w*(<[^>]*>)?\(": 1,
            r"\b(Optional|List|Map|String)<": 2,
        },
    ),
    functions=functions,
    mutation_runner=lazy("moa_java.mutation:JavaMutationRunner"),
    evaluator=lazy("moa_java.evaluator:JavaEvaluator"),
    default_sources=SOURCES,
    fetchers={"maven": fetch_maven},
    failing_test_patterns=(
        # JUnit Platform console launcher (--details=tree): `│  ├─ name() ✘ message`
        re.compile(r"^[\s│├└─]*(\S+\(\S*\))\s+✘", re.M),
    ),
    failure_clues=(r"org\.opentest4j\.AssertionFailedError", r"java\.lang\.\w+(Exception|Error)"),
    definition_pattern=r"\b[\w<>\[\], ]+\s+{name}\s*\(",
    idioms=(
        Idiom(re.compile(r"\breturn\s+null\s*;"), "returns null where an Optional says absence"),
        Idiom(
            re.compile(r"=\s*new\s+(File)?(Input|Output)Stream|=\s*new\s+\w*(Reader|Writer)\("),
            "a stream opened outside try-with-resources",
        ),
        Idiom(
            re.compile(r"catch\s*\(\s*(Exception|Throwable)\s+\w+\s*\)\s*\{\s*\}"), "an exception swallowed"
        ),
        Idiom(re.compile(r"\.printStackTrace\(\)"), "printStackTrace instead of handling or rethrowing"),
    ),
    # No dependency_dirs/locks: the jars live in the shared local Maven repository, and the
    # classpath file `.moa-java.json` is an ordinary file of the tree (hashed and copied with it).
    build_dirs=("target",),
    code_samples=CODE_SAMPLES,
)
