"""Default Python sources: small pure-Python PyPI packages whose sdists ship their test suites.

Each was checked here (Python 3.11, pytest 9, mutmut 3.8.1): sdist downloaded, tests found,
`prepare` + baseline run green; the notes give the test count. Packages whose sdist carries no
tests are listed with `ships_tests=False` so nobody wastes a shard on them.

Checked and left out (their sdists do ship tests, but the baseline is red here): six 1.16.0
(test_move_items[dbm_ndbm]: this Python has no dbm.ndbm), boltons 23.1.1 (its conftest uses a
pytest hook argument pytest 9 removed), itsdangerous 2.1.2 (tests import freezegun, which it
declares in requirements/tests.txt, not as an extra).
"""

from __future__ import annotations

from moa.api.records import SourceRef
from moa.languages.base import CuratedSource


def _src(ref: str, ships_tests: bool, note: str) -> CuratedSource:
    return CuratedSource(SourceRef.parse(ref), ships_tests, note)


DEFAULT_SOURCES: tuple[CuratedSource, ...] = (
    _src("pypi:inflection@0.5.1", True, "one package, test_inflection.py at the root; 455 tests, ~1 s"),
    _src("pypi:cachetools@5.3.3", True, "src layout, tests/; 214 tests"),
    _src("pypi:more-itertools@10.2.0", True, "tests/; 626 tests (+2324 subtests), ~6 s"),
    _src("pypi:toolz@0.12.1", True, "tests inside the package (toolz/tests); 180 tests"),
    _src("pypi:isodate@0.6.1", True, "tests inside the package (src/isodate/tests); 18 tests"),
    _src(
        "pypi:semver@3.0.2", True, "src layout, tests/; 328 tests (its addopts need pytest-cov: run without)"
    ),
    _src("pypi:humanize@4.9.0", True, "src layout, tests/; 550 tests (freezegun from its `tests` extra)"),
    _src("pypi:wcwidth@0.2.13", True, "tests/; 38 tests"),
    _src("pypi:idna@3.6", True, "tests/; 32 tests"),
    _src("pypi:parse@1.20.1", True, "tests/; 94 tests"),
    _src("pypi:iniconfig@2.0.0", False, "sdist ships no tests"),
    _src("pypi:bidict@0.23.1", False, "sdist ships no tests"),
    _src("pypi:python-slugify@8.0.4", False, "sdist ships no tests"),
    _src("pypi:tomli@2.0.1", False, "sdist ships no tests"),
    _src("pypi:sortedcontainers@2.4.0", False, "sdist ships no tests"),
)
