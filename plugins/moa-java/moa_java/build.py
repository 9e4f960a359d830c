"""The javac and JUnit Platform command lines a Java tree is built and tested with, shared by
the evaluator and the mutation runner (one way to build a tree, so their verdicts agree).

The classpath comes from `.moa-java.json` (resolved when the source was fetched, see maven.py);
compiled classes go to target/ (a build folder moa never copies or shows).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from moa_java.maven import LAYOUT

MAIN, TEST = "src/main/java", "src/test/java"
RESOURCES = ("src/main/resources", "src/test/resources")
CLASSES, TEST_CLASSES = "target/classes", "target/test-classes"
_SUMMARY = re.compile(r"\[\s*(\d+) tests (successful|failed)\s*\]")


def layout(repo: Path) -> dict[str, object]:
    path = repo / LAYOUT
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; fetch Java sources as maven:GROUP:ARTIFACT@VERSION")
    data: dict[str, object] = json.loads(path.read_text())
    return data


def encoding(repo: Path) -> str:
    return str(layout(repo).get("encoding", "UTF-8"))


def launcher(repo: Path) -> str:
    """The JUnit Platform console launcher jar matching the tree's JUnit version."""
    return str(layout(repo)["launcher"])


def dependencies(repo: Path) -> list[str]:
    return [str(j) for j in layout(repo)["classpath"]]  # type: ignore[attr-defined]


def classpath(repo: Path, *first: str) -> str:
    return ":".join([*first, *dependencies(repo)])


def sources(repo: Path, folder: str) -> list[str]:
    return sorted(p.relative_to(repo).as_posix() for p in (repo / folder).rglob("*.java"))


def javac(repo: Path, files: Sequence[str], out: str, cp: str, *flags: str) -> list[str]:
    """javac of `files` into `out`, without warnings (lint asks for them itself).

    -proc:none: annotation processors on a test classpath (JMH's) generate benchmark code,
    which neither a verdict needs nor survives a second compile into the same folder."""
    return [
        "javac",
        "-nowarn",
        "-proc:none",
        "-encoding",
        encoding(repo),
        "-d",
        out,
        "-cp",
        cp,
        *flags,
        *files,
    ]


def main_javac(repo: Path) -> list[str]:
    return javac(repo, sources(repo, MAIN), CLASSES, classpath(repo, MAIN))


def test_javac(repo: Path) -> list[str]:
    return javac(repo, sources(repo, TEST), TEST_CLASSES, classpath(repo, CLASSES, launcher(repo)))


def junit(repo: Path, tests: Sequence[str] = ()) -> list[str]:
    """The console launcher on the compiled tests: all of them, or `tests` (a class, or
    `Class#method` as the runner names failing tests)."""
    select = [f"--select-method={t}" if "#" in t else f"--select-class={t}" for t in tests]
    return [
        "java",
        "-jar",
        launcher(repo),
        "execute",
        "--disable-banner",
        "--disable-ansi-colors",
        "--details=tree",
        "--class-path",
        classpath(repo, TEST_CLASSES, CLASSES, *RESOURCES),
        *(select or ["--scan-class-path", TEST_CLASSES]),
    ]


def junit_counts(output: str) -> tuple[int, int] | None:
    """(tests run, tests failed) from the launcher's summary; None when it printed none."""
    counts = {word: int(n) for n, word in _SUMMARY.findall(output)}
    if not counts:
        return None
    return counts["successful"] + counts["failed"], counts["failed"]
