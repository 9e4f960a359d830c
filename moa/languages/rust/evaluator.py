"""The Rust evaluator: `cargo check --tests`, `cargo test`, `cargo clippy` (every warning counts).

Offline: dependencies must already be in the cargo home (fetched with the network when
the repository was prepared), which the sandbox sees read-only. The build goes to the
repository's own `target/`; `moa.languages.evaluation` keeps that folder across
evaluations in the same work slot, so only the crate itself is rebuilt each time.

Lint is clippy's and rustc's warnings together, read from cargo's JSON messages: the
roadmap's "-D warnings" judgement, without letting a warning abort the build (a warning
costs 0.3 reward, not 1.3).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from moa.languages.evaluators import (
    BuildNameChecker,
    Lint,
    Runner,
    SuiteRun,
    count_tests,
    version_of,
)
from moa.languages.sandbox import Result, Sandbox

ENV = {"CARGO_NET_OFFLINE": "true", "CARGO_TERM_COLOR": "never", "CARGO_INCREMENTAL": "0"}


class RustEvaluator(BuildNameChecker):
    language = "rust"
    # rustc's name resolution errors: value/function, path, type, method/field, import, struct.
    UNDEFINED = re.compile(
        r"^(?P<path>[^\s:]+\.rs):\d+:\d+: error\[(?:E0425|E0433|E0412|E0599|E0609|E0432|E0422|E0531)\]: "
        r"(?P<message>.+)$",
        re.M,
    )

    def toolchain(self) -> str:
        return " | ".join(
            (version_of("rustc", "-V"), version_of("cargo", "-V"), version_of("cargo", "clippy", "-V"))
        )

    def sandbox(self, repo: Path) -> Sandbox:
        return Sandbox()

    def build(self, repo: Path, run: Runner) -> Result:
        return run(["cargo", "check", "--tests", "--offline", "--message-format", "short"], env=ENV)

    def test(self, repo: Path, run: Runner, tests: Sequence[str] = ()) -> SuiteRun:
        # Several names after `--` select any test whose path contains one of them.
        result = run(["cargo", "test", "--offline", *(["--", *tests] if tests else [])], env=ENV)
        total, failed = count_tests(result.output)
        return SuiteRun(result, total, failed)

    def lint(self, repo: Path, run: Runner) -> Lint:
        result = run(["cargo", "clippy", "--tests", "--offline", "--message-format", "json"], env=ENV)
        findings, shown = [], []
        for line in result.output.splitlines():
            if not line.startswith("{"):
                continue
            message = json.loads(line)
            diag = message.get("message") or {}
            spans = [s for s in diag.get("spans", []) if s.get("is_primary")]
            if message.get("reason") != "compiler-message" or diag.get("level") != "warning" or not spans:
                continue
            code = (diag.get("code") or {}).get("code") or "warning"
            findings.append(f"{spans[0]['file_name']}: {code}: {diag['message']}")
            shown.append(f"{spans[0]['file_name']}:{spans[0]['line_start']}: {code}: {diag['message']}")
        if not result.ok and not findings:
            return Lint([], f"cargo clippy failed, lint not judged:\n{result.output}", available=False)
        return Lint(findings, "cargo clippy:\n" + "\n".join(shown) if shown else "cargo clippy: clean")
