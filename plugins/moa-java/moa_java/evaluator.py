"""The Java evaluator: javac (main, then tests) -> JUnit Platform console launcher ->
`javac -Xlint:all` warnings, on moa's build -> tests -> lint ladder.

Offline by construction: the classpath is `.moa-java.json`, resolved into the local Maven
repository when the source was fetched (see maven.py); nothing is downloaded here. The
command lines are build.py's, shared with the mutation runner.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from moa.languages.evaluators import BuildNameChecker, Lint, Runner, SuiteRun, located_findings, version_of
from moa.languages.sandbox import Result, Sandbox
from moa_java import build


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

    def build(self, repo: Path, run: Runner) -> Result:
        return run(build.main_javac(repo))

    def test(self, repo: Path, run: Runner, tests: Sequence[str] = ()) -> SuiteRun:
        compiled = run(build.test_javac(repo))
        if not compiled.ok:
            return SuiteRun(compiled, builds=False)
        result = run(build.junit(repo, tests))
        counts = build.junit_counts(result.output)
        return SuiteRun(result, *counts) if counts else SuiteRun(result)

    def lint(self, repo: Path, run: Runner) -> Lint:
        result = run(
            [
                "javac",
                "-encoding",
                build.encoding(repo),
                "-Xlint:all",
                "-Xmaxwarns",
                "10000",
                "-d",
                "target/lint-classes",
                "-cp",
                build.classpath(repo, build.MAIN),
                *build.sources(repo, build.MAIN),
            ]
        )
        warnings = "\n".join(line for line in result.output.splitlines() if ": warning: " in line)
        findings, shown = located_findings(warnings, repo, "javac")
        if not result.ok:
            return Lint([], f"javac -Xlint:all failed, lint not judged:\n{result.output}", available=False)
        return Lint(
            findings, "javac -Xlint:all:\n" + "\n".join(shown) if shown else "javac -Xlint:all: clean"
        )
