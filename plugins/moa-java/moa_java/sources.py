"""Maven Central artifacts worth mutating: small, well-tested libraries that publish a
test-sources jar (checked 2026-11-28: each was fetched, resolved and judged by the evaluator
here; the note says what its suite did). An entry whose baseline is not green is kept with
the reason, like the other plugins' lists: `moa datagen mutate` reports and skips it.
"""

from moa.api.records import SourceRef
from moa.languages.base import CuratedSource


def _artifact(spec: str, note: str = "") -> CuratedSource:
    return CuratedSource(SourceRef.parse(f"maven:{spec}"), True, note)


SOURCES = (
    _artifact(
        "commons-cli:commons-cli@1.9.0", "green: 738 JUnit 5 tests pass (59 skipped); the quick example"
    ),
    _artifact(
        "org.apache.commons:commons-numbers-fraction@1.2",
        "green: 6 classes of fraction arithmetic, a fast JUnit 5 suite; rich in comparisons and arithmetic",
    ),
    _artifact(
        "org.apache.commons:commons-text@1.12.0",
        "1305 tests, 2 red in the sandbox (they resolve host names); a full run takes 3.5 min here, so each "
        "verified mutant costs that much: five tests (locale sweeps, out-of-memory probes) take 2/3 of it",
    ),
    _artifact(
        "org.apache.commons:commons-csv@1.11.0",
        "baseline not green: its test sources hold CSVBenchmark, whose dependencies come from a Maven profile",
    ),
    _artifact(
        "commons-codec:commons-codec@1.17.1",
        "baseline not green here: the JUnit run ended without a summary (a test timed out on a loaded machine)",
    ),
)
