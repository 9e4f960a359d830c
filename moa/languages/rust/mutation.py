"""Rust mutation testing with cargo-mutants.

How it runs, and why:
- `prepare` fetches the crate's dependencies (network, trusted: `cargo fetch` runs no crate
  code) and builds the tests once, sandboxed and offline, into a target folder kept under
  ~/.cache/moa/cargo-target/NAME-VERSION, so a re-run (another shard, CI) starts warm.
- `run` lists the mutants (`cargo mutants --list --json`), then tests them in `jobs` copies of
  the crate and that target folder made with `cp -a`, one `cargo mutants --in-place --shard
  i/jobs` per copy. Copying with modification times kept is what keeps `target/` warm:
  cargo-mutants' own build directories get fresh mtimes and rebuild every dependency
  (minutes per job on a small crate), while an in-place run rebuilds only the mutated crate.
- The shared target folder is used by one process at a time (a file lock), and the crate's
  own sources are touched before each use, so no copy ever reuses a build of other sources.
- Each mutant's fixed -> buggy diff is rebuilt from its span and replacement: the diffs
  cargo-mutants writes carry a `/* ~ changed by cargo-mutants ~ */` marker that would tell a
  model where the bug is.
- Failing tests and their panic output come from the mutant's log (libtest's
  `---- NAME stdout ----` blocks).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moa.api.records import SUITE_FAILURE, FailingTest, MutationRecord, MutationStatus, SourceRef
from moa.languages import sandbox
from moa.languages.base import FunctionSpan, enclosing
from moa.languages.rust.functions import functions
from moa.languages.sampling import operator_swap_class
from moa.languages.tools import (
    DiffError,
    RunnerBase,
    ToolError,
    cache_dir,
    check_call,
    excerpt,
    install_once,
    locked,
    mutant_diff,
    mutant_timeout,
    replace_span,
)

CARGO_MUTANTS_VERSION = "27.1.0"
STATUS: dict[str, MutationStatus] = {
    "CaughtMutant": "caught",
    "MissedMutant": "missed",
    "Timeout": "timeout",
    "Unviable": "unviable",
}
ENV = {"CARGO_NET_OFFLINE": "true", "CARGO_TERM_COLOR": "never", "CARGO_INCREMENTAL": "0"}
_PASSED = re.compile(r"^test result: \w+\. (\d+) passed", re.MULTILINE)
_SWAP = re.compile(r"^replace (\S+) with (\S+)$")
_TEST_BLOCK = re.compile(r"^---- (\S+) stdout ----\n(.*?)(?=^---- |^failures:|\Z)", re.MULTILINE | re.DOTALL)
_FAILED = re.compile(r"^test (\S+) \.\.\. FAILED", re.MULTILINE)
_REGEX_META = re.compile(r"([\\.+*?()|\[\]{}^$#&\-~])")


@dataclass
class RustMutationRunner(RunnerBase):
    tool: str = f"cargo-mutants@{CARGO_MUTANTS_VERSION}"

    def tool_path(self) -> Path:
        """The cargo-mutants binary, built with `cargo install --locked` on first use (minutes)."""

        def install(folder: Path) -> None:
            check_call(
                [
                    "cargo",
                    "install",
                    "--locked",
                    "cargo-mutants",
                    "--version",
                    CARGO_MUTANTS_VERSION,
                    "--root",
                    str(folder),
                ],
                folder,
                what="cargo install cargo-mutants",
            )

        return (
            install_once("cargo-mutants", lambda d: (d / "bin" / "cargo-mutants").is_file(), install)
            / "bin"
            / "cargo-mutants"
        )

    def prepare(self, repo: Path) -> None:
        """Fetch dependencies (network), then build the tests once, offline, into `repo/target`."""
        if not (repo / "Cargo.toml").is_file():
            raise ToolError(f"{repo} has no Cargo.toml: Rust sources must be crates (crates:NAME@VERSION)")
        try:
            check_call(["cargo", "fetch"], repo, what="cargo fetch")
        except ToolError as e:
            raise ToolError(
                f"{e}\nThe crate does not resolve on its own (often a dev-dependency by workspace path): "
                "choose another crate or a git: source of the whole workspace."
            ) from e
        res = self._cargo(repo, ["test", "--no-run", "--offline"], 3600, target=True)
        if not res.ok:
            raise ToolError(f"the tests of {repo.name} do not build standalone:\n{excerpt(res.output)}")

    def baseline(self, repo: Path, timeout_s: float, exclude_tests: Sequence[str] = ()) -> tuple[bool, str]:
        skip = ["--", "--exact", *(a for t in exclude_tests for a in ("--skip", t))] if exclude_tests else []
        res = self._cargo(repo, ["test", "--offline", *skip], timeout_s, target=True)
        return self.baseline_result(res, limit=4000)

    def failing_tests(self, output: str) -> list[str]:
        """The tests libtest reported FAILED (`test NAME ... FAILED`)."""
        return [t.name for t in log_failures(output) if t.name != SUITE_FAILURE]

    def passed_tests(self, output: str) -> int | None:
        """Tests passed over every libtest binary (`test result: ok. 12 passed; ...`)."""
        counts = _PASSED.findall(output)
        return sum(map(int, counts)) if counts else None

    def raw_command(self, repo: Path) -> tuple[list[str], dict[str, str], tuple[int, ...]]:
        """cargo-mutants as a person runs it on the whole crate (bench/datagen_overhead.py): its
        own build folders, every mutant; argv, environment, the exit codes of a finished run."""
        # exit 2 and 3 say that mutants were missed or timed out: a finished run
        return [str(self.tool_path()), "mutants", "--no-shuffle", "-j", str(self.jobs)], dict(ENV), (0, 2, 3)

    def list_mutants(self, repo: Path) -> list[dict[str, Any]]:
        res = self._cargo(
            repo, [str(self.tool_path()), "mutants", "--list", "--json", "--no-shuffle"], 600, direct=True
        )
        if not res.ok:
            raise ToolError(f"cargo mutants --list failed in {repo}:\n{excerpt(res.output)}")
        mutants: list[dict[str, Any]] = json.loads(res.output[res.output.index("[") :])
        return mutants

    def run(
        self,
        repo: Path,
        source: SourceRef,
        max_mutations: int | None,
        timeout_s: float,
        exclude_tests: Sequence[str] = (),
    ) -> list[MutationRecord]:
        """`max_mutations` mutants (all when None) drawn by `self.draw`, tested in `jobs` warm copies.

        `timeout_s` bounds the whole run; each mutant's tests get `mutant_timeout(baseline)`.
        `exclude_tests` (flaky tests) are passed to libtest as `--skip NAME --exact`.
        """
        listed = self.list_mutants(repo)
        spans: dict[str, list[FunctionSpan]] = {}

        def key(m: dict[str, Any]) -> tuple[str, str, str]:
            if m["file"] not in spans:
                spans[m["file"]] = functions(m["file"], (repo / m["file"]).read_text())
            line = m["span"]["start"]["line"]
            return m["file"], enclosing(spans[m["file"]], line) or "", bug_class(m["genre"], _operator(m))

        mutants = self.draw(listed, max_mutations, key)
        if not mutants:
            return []
        per_mutant = mutant_timeout(self.baseline_s, timeout_s)
        args = ["--no-shuffle", "--baseline=skip", "--timeout", str(int(per_mutant)), "--cargo-arg=--offline"]
        if exclude_tests:
            args += ["--cargo-test-arg=--", "--cargo-test-arg=--exact"]
            args += [f"--cargo-test-arg={a}" for t in exclude_tests for a in ("--skip", t)]
        if len(mutants) < len(listed):
            args += ["--re", "^(" + "|".join(_REGEX_META.sub(r"\\\1", m["name"]) for m in mutants) + ")$"]
        shards = max(1, min(self.jobs, len(mutants)))
        with tempfile.TemporaryDirectory(prefix="moa-cargo-mutants-") as scratch:
            work = Path(scratch)

            def shard(i: int) -> list[dict[str, Any]]:
                copy = work / f"copy{i}" / repo.name
                copy.parent.mkdir()
                # cp -a keeps mtimes, so the copied target/ stays fresh for cargo.
                subprocess.run(["cp", "-a", str(repo), str(copy)], check=True)
                if target_dir(repo).is_dir():
                    shutil.rmtree(copy / "target", ignore_errors=True)
                    subprocess.run(["cp", "-a", str(target_dir(repo)), str(copy / "target")], check=True)
                out = work / f"out{i}"
                cmd = [str(self.tool_path()), "mutants", "--in-place", *args, "-o", str(out)]
                if shards > 1:
                    cmd += ["--shard", f"{i}/{shards}", "--sharding", "round-robin"]
                limit = timeout_s
                res = self._cargo(copy, cmd, limit, direct=True, writable=[out])
                outcomes = out / "mutants.out" / "outcomes.json"
                if not outcomes.is_file():
                    raise ToolError(
                        f"cargo mutants wrote no outcomes (exit {res.returncode}):\n{excerpt(res.output)}"
                    )
                data: list[dict[str, Any]] = json.loads(outcomes.read_text())["outcomes"]
                for o in data:  # logs are read now: the scratch folder goes away
                    log = out / "mutants.out" / o["log_path"] if o.get("log_path") else None
                    o["log_text"] = log.read_text(errors="replace") if log and log.is_file() else ""
                return data

            with ThreadPoolExecutor(max_workers=shards) as pool:
                outcomes = [o for part in pool.map(shard, range(shards)) for o in part]
        return normalise(outcomes, repo, source, self.tool, self.rejected)

    # ------------------------------------------------------------------ internals

    def _cargo(
        self,
        repo: Path,
        args: list[str],
        timeout_s: float,
        direct: bool = False,
        writable: list[Path] | None = None,
        target: bool = False,
    ) -> sandbox.Result:
        """A sandboxed, offline cargo command; `target` builds into the crate's cached target folder."""
        cmd = args if direct else ["cargo", *args]
        env, binds = dict(ENV), list(writable or [])
        if target:
            # The target folder is shared by every copy of this crate version; cargo trusts
            # mtimes for the crate's own sources, so make them newer than anything built there
            # (a copy of the pristine crate must never reuse a mutated build). Dependencies stay.
            now = time.time()
            for path in repo.rglob("*"):
                if path.is_file() and "target" not in path.relative_to(repo).parts[:1]:
                    os.utime(path, (now, now))
            env["CARGO_TARGET_DIR"] = str(target_dir(repo))
            binds.append(target_dir(repo))
            # One user at a time: `cargo test` releases cargo's own lock before the doctests,
            # and another copy rebuilding the crate then would pull the rlib from under them.
            with locked(f"cargo-target-{target_dir(repo).name}"):
                return sandbox.run(
                    cmd, repo, writable=binds, env=env, limits=sandbox.Limits(timeout_s=timeout_s)
                )
        return sandbox.run(cmd, repo, writable=binds, env=env, limits=sandbox.Limits(timeout_s=timeout_s))


def target_dir(repo: Path) -> Path:
    """The reused target folder of this crate version (the scratch copy's own name says nothing)."""
    package = tomllib.loads((repo / "Cargo.toml").read_text()).get("package", {})
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{package.get('name', repo.name)}-{package.get('version', '0')}")
    return cache_dir() / "cargo-target" / name


def normalise(
    outcomes: list[dict[str, Any]], repo: Path, source: SourceRef, tool: str, rejected: Counter[str]
) -> list[MutationRecord]:
    """cargo-mutants' outcomes (outcomes.json entries, plus `log_text`) into records, in file order;
    a mutant whose diff cannot be made right is counted in `rejected` instead."""
    texts: dict[str, str] = {}
    records = []
    for o in outcomes:
        mutant = (o.get("scenario") or {}).get("Mutant") if isinstance(o.get("scenario"), dict) else None
        status = STATUS.get(o.get("summary", ""))
        if mutant is None or status is None:  # the baseline scenario, or a summary we do not know
            continue
        path = mutant["file"]
        fixed = texts.setdefault(path, (repo / path).read_text())
        span = mutant["span"]
        buggy = replace_span(
            fixed,
            span["start"]["line"],
            span["start"]["column"],
            span["end"]["line"],
            span["end"]["column"],
            mutant["replacement"],
        )
        try:
            diff = mutant_diff(path, fixed, buggy)
        except DiffError:
            rejected["diff_roundtrip"] += 1
            continue
        operator = _operator(mutant)
        records.append(
            MutationRecord(
                language="rust",
                source=str(source),
                version=source.version,
                file=path,
                function=enclosing(functions(path, fixed), span["start"]["line"]),
                line=span["start"]["line"],
                operator=f"{mutant['genre']}: {operator}",
                operator_class=bug_class(mutant["genre"], operator),
                diff=diff,
                status=status,
                failing_tests=log_failures(o.get("log_text", "")) if status == "caught" else [],
                tool=tool,
                timings={
                    f"{p['phase'].lower()}_s": round(p["duration"], 3) for p in o.get("phase_results") or []
                },
            )
        )
    return sorted(records, key=lambda r: (r.file, r.line or 0, r.operator))


def _operator(mutant: dict[str, Any]) -> str:
    """cargo-mutants' description of a mutant without its place: `replace == with !=`."""
    # cargo-mutants' own name for the function is used only to cut it off the label.
    function = (mutant.get("function") or {}).get("function_name")
    operator: str = mutant["name"].split(": ", 1)[-1]
    return (
        operator[: -len(f" in {function}")] if function and operator.endswith(f" in {function}") else operator
    )


def bug_class(genre: str, operator: str) -> str:
    """cargo-mutants' genre and operator -> bug class (moa.languages.sampling). Replacing a whole
    body with a default value is a stub; deleting a match arm drops a block."""
    if genre == "FnValue":
        return "stub"
    if genre == "MatchArm":
        return "block"
    if genre == "MatchArmGuard":
        return "boolean"
    if genre == "StructField":
        return "variable"
    if genre == "UnaryOperator":
        return "boolean" if "!" in operator else "arithmetic"
    swap = _SWAP.match(operator)
    return operator_swap_class(swap[1], swap[2]) if genre == "BinaryOperator" and swap else "other"


def log_failures(log: str) -> list[FailingTest]:
    """The tests libtest reported FAILED, each with its captured output (panic message)."""
    blocks = {name: excerpt(body, 1500) for name, body in _TEST_BLOCK.findall(log)}
    names = list(dict.fromkeys(_FAILED.findall(log))) or list(blocks)
    if not names:  # e.g. a doctest or a test binary that crashed: keep the log's end
        return [FailingTest(name=SUITE_FAILURE, excerpt=excerpt(log, 1500))]
    return [FailingTest(name=n, excerpt=blocks.get(n, "")) for n in names]
