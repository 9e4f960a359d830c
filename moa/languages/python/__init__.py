"""The Python language plugin."""

import re

from moa.languages.base import Idiom, LanguagePlugin, lazy
from moa.languages.python.functions import functions
from moa.languages.python.offline import OFFLINE_CACHE
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
    offline_cache=OFFLINE_CACHE,
)
