"""Maven Central artifacts worth mutating: small, well-tested libraries that publish a
test-sources jar. Each entry was fetched, resolved and its suite run green with
`pytest plugins/moa-java/tests -m network` (2026-11-28); the note says what was measured.
"""

from moa.api.records import SourceRef
from moa.languages.base import CuratedSource


def _artifact(spec: str, note: str = "") -> CuratedSource:
    return CuratedSource(SourceRef.parse(f"maven:{spec}"), True, note)


SOURCES = (
    _artifact("commons-cli:commons-cli@1.9.0", "the quick example: small, JUnit 5"),
    _artifact("org.apache.commons:commons-csv@1.11.0"),
    _artifact("org.apache.commons:commons-text@1.12.0"),
    _artifact("commons-codec:commons-codec@1.17.1"),
)
