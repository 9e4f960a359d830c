"""Java mutation testing with PIT, turned into source mutants moa can verify.

Why PIT, and what is kept of it: PIT (pitest, the standard Java tool) mutates bytecode and
tells which mutants the tests kill, with the class, method, line and mutator of each; it never
writes the mutant as source, while a record's diff must be source. So PIT picks the mutants
and edits.py maps each onto the one source token its mutator can have changed on that line
(dropping, by reason, every mutant it cannot map unambiguously); a mapped mutant the tests
killed is compiled once as source (an edit that does not compile is dropped), and moa's own
verification (moa/datagen/verify.py) then tests the source diff itself: baseline green twice,
the mutant red on a named non-flaky JUnit test, reverted green and byte-identical.

Builds are incremental: javac recompiles only the sources whose bytes changed since the last
build (a mutant's file, then its revert), as a build tool would. A mutant changes one line of
a method body, never a signature or a compile-time constant, so no other class depends on
what changed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from moa.api.records import FailingTest, MutationRecord, MutationStatus, SourceRef
from moa.languages import sandbox
from moa.languages.tools import DiffError, RunnerBase, ToolError, excerpt, mutant_diff
from moa_java import build, edits
from moa_java.pit import MUTATORS, PIT_VERSION, PitMutant, parse_report, tool_classpath

STATUS: dict[str, MutationStatus] = {
    "KILLED": "caught",
    "SURVIVED": "missed",
    "NO_COVERAGE": "missed",
    "TIMED_OUT": "timeout",
}  # MEMORY_ERROR, RUN_ERROR, NON_VIABLE: unviable
BUILT = "target/moa-built.json"  # the bytes each compiled source had: {folder: {path: sha256}}
# The console launcher's failure list: `MethodSource [className = 'X', methodName = 'y', methodParameterTypes = '']`
_METHOD_SOURCE = re.compile(
    r"MethodSource \[className = '([^']+)', methodName = '([^']+)', methodParameterTypes = '([^']*)'\]"
)
_PASSED = re.compile(r"\[\s*(\d+) tests successful\s*\]")


@dataclass
class JavaMutationRunner(RunnerBase):
    tool: str = f"pitest@{PIT_VERSION}"
    jobs: int = 1  # PIT's threads: one JVM testing mutants at a time

    def ensure_tool(self) -> None:
        tool_classpath()

    def prepare(self, repo: Path) -> None:
        """Compile the main and test sources (offline: the classpath was resolved at fetch)."""
        build.layout(repo)  # a tree fetched as maven:..., or a clear error
        res = self._compile(repo, 1800.0)
        if not res.ok:
            raise ToolError(f"{repo.name} does not build:\n{excerpt(res.output)}")

    def baseline(
        self, repo: Path, timeout_s: float, exclude_tests: Sequence[str] = (), only_tests: Sequence[str] = ()
    ) -> tuple[bool, str]:
        """Build what changed, run the JUnit suite (or `only_tests`): green when every test
        that failed is one of `exclude_tests` (the launcher cannot deselect single methods)."""
        start = time.monotonic()
        compiled = self._compile(repo, timeout_s)
        if not compiled.ok:
            return False, excerpt(compiled.output, 4000)
        res = self._sandboxed(repo, build.junit(repo, only_tests), timeout_s - (time.monotonic() - start))
        counts = build.junit_counts(res.output)
        failed = failures(res.output)
        green = (
            not res.timed_out
            and counts is not None
            and counts[1] <= len(failed)  # every failure is listed...
            and all(excluded(t, exclude_tests) for t in failed)  # ...and left out
        )
        res = sandbox.Result(0 if green else 1, res.output, time.monotonic() - start, res.timed_out)
        return self.baseline_result(res, limit=6000)

    def failing_tests(self, output: str) -> list[str]:
        """The tests the launcher lists as failed, as `Class#method` (parameter types kept)."""
        return list(dict.fromkeys(failures(output)))

    def passed_tests(self, output: str) -> int | None:
        counts = _PASSED.findall(output)
        return int(counts[-1]) if counts else None

    def run(
        self,
        repo: Path,
        source: SourceRef,
        max_mutations: int | None,
        timeout_s: float,
        exclude_tests: Sequence[str] = (),
    ) -> list[MutationRecord]:
        """PIT on the tree, then `max_mutations` of its mutants (all when None) drawn by
        `self.draw` among those mapped onto source; killed ones are compile-checked as source."""
        start = time.monotonic()
        mutants = self.find_mutants(repo, max_mutations, timeout_s, exclude_tests)
        texts: dict[str, str] = {}
        on_line = Counter((m.path, m.line, m.mutator) for m in mutants)
        mapped: list[tuple[PitMutant, edits.Edit]] = []
        for m in mutants:
            if m.path not in texts:
                file = repo / m.path
                texts[m.path] = file.read_text(encoding=build.encoding(repo)) if file.is_file() else ""
            made = (
                edits.edit(m, texts[m.path], on_line[(m.path, m.line, m.mutator)])
                if texts[m.path]
                else "no_source_file"
            )
            if isinstance(made, str):
                self.rejected[f"pit_{made}"] += 1
            else:
                mapped.append((m, made))
        drawn = self.draw(
            mapped,
            max_mutations,
            lambda p: (p[0].path, p[0].function, edits.CLASSES.get(p[0].mutator, "other")),
        )
        records = []
        for m, e in drawn:
            rec = self._record(repo, source, m, e, texts[m.path], timeout_s - (time.monotonic() - start))
            if rec is not None:
                records.append(rec)
        return sorted(records, key=lambda r: (r.file, r.line or 0, r.operator))

    def find_mutants(
        self, repo: Path, max_mutations: int | None, timeout_s: float, exclude_tests: Sequence[str] = ()
    ) -> list[PitMutant]:
        """PIT's verdicts on the tree's classes (its default mutators); with a cap, at most a
        few per class (PIT's CLASSLIMIT), enough to draw `max_mutations` from."""
        # Only the mutators of the bug classes asked for: PIT's per-class cap is then spent on them.
        mutators = [
            m for m in MUTATORS if self.operator_classes is None or edits.CLASSES[m] in self.operator_classes
        ]
        if not mutators:
            return []
        main = build.sources(repo, build.MAIN)
        packages = {str(Path(p).parent.relative_to(build.MAIN)).replace("/", ".") for p in main}
        features = []
        if max_mutations is not None:
            # Mapping drops about half of PIT's mutants (two tokens on a line, a bare condition).
            features = [
                f"--features=+CLASSLIMIT(limit[{max(2, math.ceil(4 * max_mutations / max(1, len(main))))}])"
            ]
        skipped_classes = sorted({t.split("#")[0] for t in exclude_tests})
        with tempfile.TemporaryDirectory(prefix="moa-pit-") as out:
            cmd = [
                "java",
                "-cp",
                ":".join([*tool_classpath(), build.launcher(repo)]),
                "org.pitest.mutationtest.commandline.MutationCoverageReport",
                f"--reportDir={out}",
                "--targetClasses=" + ",".join(sorted(f"{p}.*" for p in packages)),
                "--sourceDirs=" + build.MAIN,
                "--classPath="
                + ",".join(
                    [
                        build.CLASSES,
                        build.TEST_CLASSES,
                        *build.RESOURCES,
                        *build.dependencies(repo),
                        build.launcher(repo),
                    ]
                ),
                "--mutators=" + ",".join(mutators),
                "--outputFormats=XML",
                "--timestampedReports=false",
                f"--threads={self.jobs}",
                # PIT's per-mutant timeout: its factor times the test's own time, plus this.
                "--timeoutConst=3000",
                *([f"--excludedTestClasses={','.join(skipped_classes)}"] if skipped_classes else []),
                *features,
            ]
            res = self._sandboxed(repo, cmd, timeout_s, writable=[Path(out)])
            report = Path(out) / "mutations.xml"
            if not res.ok or not report.is_file() or not report.stat().st_size:
                raise ToolError(f"PIT failed in {repo} (exit {res.returncode}):\n{excerpt(res.output)}")
            return parse_report(report.read_text())

    # ------------------------------------------------------------------ internals

    def _record(
        self, repo: Path, source: SourceRef, m: PitMutant, e: edits.Edit, fixed: str, timeout_s: float
    ) -> MutationRecord | None:
        buggy = edits.apply(fixed, e)
        try:
            diff = mutant_diff(m.path, fixed, buggy)
        except DiffError:
            self.rejected["diff_roundtrip"] += 1
            return None
        status = STATUS.get(m.status, "unviable")
        if status == "caught" and not self._compiles(repo, m.path, buggy, timeout_s):
            self.rejected["pit_edit_does_not_compile"] += 1
            return None
        return MutationRecord(
            language="java",
            source=str(source),
            version=source.version,
            file=m.path,
            function=m.function,
            line=m.line,
            operator=e.operator,
            operator_class=edits.CLASSES.get(m.mutator, "other"),
            diff=diff,
            status=status,
            failing_tests=[FailingTest(name=m.killing_test)] if status == "caught" and m.killing_test else [],
            tool=self.tool,
        )

    def _compiles(self, repo: Path, path: str, text: str, timeout_s: float) -> bool:
        """Whether `path` compiles with `text` against the tree's classes (nothing in the tree changes)."""
        with tempfile.TemporaryDirectory(prefix="moa-javac-") as tmp:
            copy = Path(tmp) / "src" / Path(path).relative_to(build.MAIN)
            copy.parent.mkdir(parents=True)
            copy.write_text(text, encoding=build.encoding(repo))
            cmd = build.javac(repo, [str(copy)], str(Path(tmp) / "out"), build.classpath(repo, build.CLASSES))
            return self._sandboxed(repo, cmd, timeout_s, writable=[Path(tmp)]).ok

    def _compile(self, repo: Path, timeout_s: float) -> sandbox.Result:
        """javac of the main, then test, sources whose bytes changed since they were last built."""
        start = time.monotonic()
        state_file = repo / BUILT
        state: dict[str, dict[str, str]] = json.loads(state_file.read_text()) if state_file.is_file() else {}
        output = []
        for folder, out, cp in (
            (build.MAIN, build.CLASSES, build.classpath(repo, build.CLASSES)),
            (
                build.TEST,
                build.TEST_CLASSES,
                build.classpath(repo, build.CLASSES, build.TEST_CLASSES, build.launcher(repo)),
            ),
        ):
            now = {
                p: hashlib.sha256((repo / p).read_bytes()).hexdigest() for p in build.sources(repo, folder)
            }
            old = state.get(folder, {})
            # A source gone or added: everything again (its classes may be stale or missing).
            changed = sorted(now) if set(now) != set(old) else [p for p in now if now[p] != old[p]]
            if not changed:
                continue
            res = self._sandboxed(
                repo, build.javac(repo, changed, out, cp), timeout_s - (time.monotonic() - start)
            )
            output.append(res.output)
            if not res.ok:
                state.pop(folder, None)  # a half-built folder: rebuild all of it next time
                state_file.parent.mkdir(parents=True, exist_ok=True)
                state_file.write_text(json.dumps(state))
                return sandbox.Result(
                    res.returncode or 1, "\n".join(output), time.monotonic() - start, res.timed_out
                )
            state[folder] = now
            state_file.parent.mkdir(parents=True, exist_ok=True)
            state_file.write_text(json.dumps(state))
        return sandbox.Result(0, "\n".join(output), time.monotonic() - start)

    @staticmethod
    def _sandboxed(
        repo: Path, cmd: list[str], timeout_s: float, writable: Sequence[Path] = ()
    ) -> sandbox.Result:
        return sandbox.run(
            cmd, repo, writable=list(writable), limits=sandbox.Limits(timeout_s=max(1.0, timeout_s))
        )


def failures(output: str) -> list[str]:
    """Every failure the launcher lists (a parameterised test once per failed invocation)."""
    return [
        f"{cls}#{method}" + (f"({params})" if params else "")
        for cls, method, params in _METHOD_SOURCE.findall(output)
    ]


def excluded(test: str, tests: Sequence[str]) -> bool:
    """Whether `test` is one of `tests`, named by its class, `Class#method` or with parameter types."""
    return test in tests or test.split("(")[0] in tests or test.split("#")[0] in tests
