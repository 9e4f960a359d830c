"""The Java evaluator: javac (main, then tests) -> JUnit Platform console launcher ->
`javac -Xlint:all` warnings, on moa's build -> tests -> lint ladder.

Offline by construction: the classpath is `.moa-java.json`, resolved into the local Maven
repository when the source was fetched (see maven.py); nothing is downloaded here. Compiled
classes go to target/ (a build folder moa never copies or shows).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from moa.languages.evaluators import BuildNameChecker, Lint, Runner, SuiteRun, located_findings, version_of
from moa.languages.sandbox import Result, Sandbox
from moa_java.maven import LAYOUT

MAIN, TEST = "src/main/java", "src/test/java"
RESOURCES = ("src/main/resources", "src/test/resources")
_SUMMARY = re.compile(r"\[\s*(\d+) tests (successful|failed)\s*\]")


def layout(repo: Path) -> dict[str, object]:
    path = repo / LAYOUT
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; fetch Java sources as maven:GROUP:ARTIFACT@VERSION")
    data: dict[str, object] = json.loads(path.read_text())
    return data


def _encoding(repo: Path) -> str:
    return str(layout(repo).get("encoding", "UTF-8"))


def _sources(repo: Path, folder: str) -> list[str]:
    return sorted(p.relative_to(repo).as_posix() for p in (repo / folder).rglob("*.java"))


class JavaEvaluator(BuildNameChecker):
    language = "java"
    # javac names the missing symbol below the error, after the source line and its caret.
    UNDEFINED = re.compile(
        r"^(?P<path>[^\s:]+\.java):\d+: error: cannot find symbol\n.*\n.*\n\s*(?P<message>symbol:.*)$", re.M
    )

    def toolchain(self) -> str:
        return " | ".join((version_of("javac", "-version"), version_of("java", "-version")))

    def sandbox(self, repo: Path) -> Sandbox:
        return Sandbox()

    def _classpath(self, repo: Path, *first: str) -> str:
        return ":".join([*first, *map(str, layout(repo)["classpath"])])  # type: ignore[call-overload]

    # -proc:none: annotation processors on a test classpath (JMH's) generate benchmark code,
    # which neither the verdict needs nor survives a second compile into the same folder.
    def _javac(self, repo: Path, run: Runner, folder: str, out: str, *flags: str, cp: str) -> Result:
        return run(
            [
                "javac",
                "-nowarn",
                "-proc:none",
                "-encoding",
                _encoding(repo),
                "-d",
                out,
                "-cp",
                cp,
                *flags,
                *_sources(repo, folder),
            ]
        )

    def build(self, repo: Path, run: Runner) -> Result:
        return self._javac(repo, run, MAIN, "target/classes", cp=self._classpath(repo, MAIN))

    def test(self, repo: Path, run: Runner, tests: Sequence[str] = ()) -> SuiteRun:
        launcher = str(layout(repo)["launcher"])
        cp = self._classpath(repo, "target/classes", launcher)
        compiled = self._javac(repo, run, TEST, "target/test-classes", cp=cp)
        if not compiled.ok:
            return SuiteRun(compiled, builds=False)
        select = [f"--select-method={t}" if "#" in t else f"--select-class={t}" for t in tests]
        result = run(
            [
                "java",
                "-jar",
                launcher,
                "execute",
                "--disable-banner",
                "--disable-ansi-colors",
                "--details=tree",
                "--class-path",
                self._classpath(repo, "target/test-classes", "target/classes", *RESOURCES),
                *(select or ["--scan-class-path", "target/test-classes"]),
            ]
        )
        counts = {word: int(n) for n, word in _SUMMARY.findall(result.output)}
        if not counts:
            return SuiteRun(result)
        return SuiteRun(result, counts["successful"] + counts["failed"], counts["failed"])

    def lint(self, repo: Path, run: Runner) -> Lint:
        cp = self._classpath(repo, MAIN)
        result = run(
            [
                "javac",
                "-encoding",
                _encoding(repo),
                "-Xlint:all",
                "-Xmaxwarns",
                "10000",
                "-d",
                "target/lint-classes",
                "-cp",
                cp,
                *_sources(repo, MAIN),
            ]
        )
        warnings = "\n".join(line for line in result.output.splitlines() if ": warning: " in line)
        findings, shown = located_findings(warnings, repo, "javac")
        if not result.ok:
            return Lint([], f"javac -Xlint:all failed, lint not judged:\n{result.output}", available=False)
        return Lint(
            findings, "javac -Xlint:all:\n" + "\n".join(shown) if shown else "javac -Xlint:all: clean"
        )
