"""The Python language plugin."""

import re

from moa.languages.base import Idiom, LanguagePlugin, RoutingMarkers, lazy
from moa.languages.python.functions import functions
from moa.languages.python.samples import CODE_SAMPLES
from moa.languages.python.sources import DEFAULT_SOURCES

plugin = LanguagePlugin(
    name="python",
    extensions=(".py",),
    markers={
        r"^\s*def\s+\w+\(.*\)\s*(->.*)?:": 2,
        r"^\s*import\s+\w+": 1,
        r"^\s*from\s+\w+(\.\w+)*\s+import\b": 2,
        r"\bself\b": 1,
        r"^\s*class\s+\w+.*:\s*$": 1,
    },
    routing=RoutingMarkers(
        fences=("python", "py", "python3", "pycon"),
        manifests=(
            "pyproject.toml",
            "setup.py",
            "setup.cfg",
            "requirements.txt",
            "tox.ini",
            "Pipfile",
            "conftest.py",
        ),
        patterns={
            r"Traceback \(most recent call last\)": 4,
            r'File "[^"]+\.py", line \d+': 4,
            r"^\w*(Error|Exception): ": 1,
            r"^\s*(try|finally|else|except\b[^:]*):\s*$": 2,
            r"^\s*(el)?if\s.+:\s*$": 1,
            r"^\s*for\s+\w+(,\s*\w+)*\s+in\s+.+:\s*$": 2,
            r"\bwith\s+.+\s+as\s+\w+:": 2,
            r"\blambda\s+\w*:": 2,
            r"__\w+__": 2,
            r"\basync\s+def\b|\bawait\s+\w": 1,
            r"^\s*import\s+\w+(\s+as\s+\w+)?\s*$": 1,
            r"\bprint\(": 1,
            r"\b(True|False|None)\b": 1,
            r"\b(pytest|pip install|python -m|elif|def)\b": 1,
            r"^\s*@\w+": 1,
        },
    ),
    evaluator=lazy("moa.languages.python.evaluator:PythonEvaluator"),
    mutation_runner=lazy("moa.languages.python.mutation:MutmutRunner"),
    functions=functions,
    default_sources=DEFAULT_SOURCES,
    failing_test_patterns=(
        re.compile(r"^(?:FAILED|ERROR) (\S+?)(?: - .*)?$", re.M),  # pytest summary
    ),
    failure_clues=(r"E\s", "AssertionError"),
    definition_pattern=r"def {name}\b",
    idioms=(
        Idiom(re.compile(r"^\s*(async\s+)?def\s+\w+\([^)]*\)\s*:"), "function without a return type hint"),
        Idiom(re.compile(r"^\s*except\s*:"), "bare except"),
    ),
    dependency_dirs=(".venv", ".moa-venv"),
    dependency_locks=(".venv/pyvenv.cfg", ".moa-venv/pyvenv.cfg"),
    build_dirs=(
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
        ".hypothesis",
        "build",
        "dist",
    ),
    code_samples=CODE_SAMPLES,
)
