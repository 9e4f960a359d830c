"""The Go evaluator: `go build ./...`, `go test ./...`, `go vet` (+ golangci-lint when on PATH).

Offline by construction: GOPROXY=off and GOTOOLCHAIN=local, so a module's dependencies
must already be in the module cache (prepared with the network before evaluation; the
cache is mounted read-only). The build cache is moa's own and shared by every evaluation:
Go's cache is content-addressed and safe for concurrent use, so a second evaluation of
the same module only recompiles the package that changed.

`go vet` always runs, so lint is always judged; golangci-lint adds its findings when it
is installed, and the output says when it is not (it is not installed on demand: it is a
large download with its own release cadence, left to the sandbox image).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from moa.languages.evaluators import (
    BuildNameChecker,
    Lint,
    Runner,
    SuiteRun,
    eval_root,
    located_findings,
    version_of,
)
from moa.languages.sandbox import Result, Sandbox


@cache
def module_cache() -> Path:
    """Where prepared dependencies live: $GOMODCACHE, else the go tool's own default."""
    if os.environ.get("GOMODCACHE"):
        return Path(os.environ["GOMODCACHE"])
    out = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=False)
    return Path(out.stdout.strip() or Path.home() / "go" / "pkg" / "mod")


def build_cache() -> Path:
    return eval_root() / "go-build"


class GoEvaluator(BuildNameChecker):
    language = "go"
    # The type checker's unresolved identifiers, and selectors naming no field or method.
    UNDEFINED = re.compile(
        r"^(?P<path>[^\s:]+\.go):\d+:\d+: (?P<message>undefined: .+|.+ undefined \(type .+\))$", re.M
    )

    def toolchain(self) -> str:
        golangci = shutil.which("golangci-lint")
        return " | ".join(
            (
                version_of("go", "version"),
                version_of(golangci, "version") if golangci else "golangci-lint: absent",
            )
        )

    def sandbox(self, repo: Path) -> Sandbox:
        return Sandbox(writable=(build_cache(),))

    def _env(self) -> dict[str, str]:
        return {
            "GOCACHE": str(build_cache()),
            "GOMODCACHE": str(module_cache()),
            "GOPROXY": "off",
            "GOTOOLCHAIN": "local",
            "GOWORK": "off",
            "GOTELEMETRY": "off",
            "GOFLAGS": "-mod=mod",
        }

    def build(self, repo: Path, run: Runner) -> Result:
        return run(["go", "build", "./..."], env=self._env())

    def test(self, repo: Path, run: Runner, tests: Sequence[str] = ()) -> SuiteRun:
        # -vet=off: vet's verdict is lint (judged after the tests), not a test failure.
        select = ["-run", "^(" + "|".join(re.escape(t) for t in tests) + ")$"] if tests else []
        result = run(["go", "test", "-vet=off", "-json", *select, "./..."], env=self._env())
        passed = failed = 0
        text = []
        for line in result.output.splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                text.append(line)  # the command line, build errors
                continue
            if not isinstance(event, dict):
                text.append(line)
                continue
            if event.get("Output"):
                text.append(event["Output"].rstrip("\n"))
            if event.get("Test") and event.get("Action") in ("pass", "fail"):
                passed += event["Action"] == "pass"
                failed += event["Action"] == "fail"
        result.output = "\n".join(t for t in text if t)
        # A test file that does not compile is a compile failure, not a failing test.
        return SuiteRun(result, passed + failed, failed, builds="[build failed]" not in result.output)

    def lint(self, repo: Path, run: Runner) -> Lint:
        vet = run(["go", "vet", "./..."], env=self._env())
        findings, shown = located_findings(vet.output, repo, "vet")
        if not vet.ok and not findings:  # vet itself failed: report, do not guess
            return Lint([], f"go vet failed, lint not judged:\n{vet.output}", available=False)
        notes = []
        golangci = shutil.which("golangci-lint")
        if golangci:
            extra = run([golangci, "run", "./..."], env=self._env())
            more, more_shown = located_findings(extra.output, repo, "golangci-lint")
            findings, shown = findings + more, shown + more_shown
        else:
            notes.append("(golangci-lint not on PATH: judged by go vet alone)")
        report = "go vet:\n" + "\n".join(shown) if shown else "go vet: clean"
        return Lint(findings, "\n".join([report, *notes]))
