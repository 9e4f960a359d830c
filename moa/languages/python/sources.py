"""Default Python sources: small pure-Python PyPI packages whose sdists ship their test suites.

Checked by downloading each sdist and looking (see the notes); packages whose sdist carries no
tests are listed with `ships_tests=False` so nobody wastes a shard on them.
"""

from __future__ import annotations

from moa.api.records import SourceRef
from moa.languages.base import CuratedSource


def _src(ref: str, ships_tests: bool, note: str) -> CuratedSource:
    return CuratedSource(SourceRef.parse(ref), ships_tests, note)


DEFAULT_SOURCES: tuple[CuratedSource, ...] = (
    _src("pypi:inflection@0.5.1", True, "one module, test_inflection.py at the root; ~450 tests in 1 s"),
    _src("pypi:cachetools@5.3.3", True, "src layout, tests/"),
    _src("pypi:more-itertools@10.2.0", True, "tests/ (test_more.py, test_recipes.py)"),
    _src("pypi:toolz@0.12.1", True, "tests inside the package (toolz/tests)"),
    _src("pypi:isodate@0.6.1", True, "tests inside the package (src/isodate/tests)"),
    _src("pypi:semver@3.0.2", True, "src layout, tests/"),
    _src("pypi:six@1.16.0", True, "one module, test_six.py at the root"),
    _src("pypi:humanize@4.9.0", True, "src layout, tests/"),
    _src("pypi:boltons@23.1.1", True, "tests/"),
    _src("pypi:wcwidth@0.2.13", True, "tests/"),
    _src("pypi:itsdangerous@2.1.2", True, "src layout, tests/"),
    _src("pypi:idna@3.6", True, "tests/"),
    _src("pypi:parse@1.20.1", True, "tests/"),
    _src("pypi:bidict@0.23.1", False, "sdist ships no tests"),
    _src("pypi:python-slugify@8.0.4", False, "sdist ships no tests"),
    _src("pypi:tomli@2.0.1", False, "sdist ships no tests"),
    _src("pypi:sortedcontainers@2.4.0", False, "sdist ships no tests"),
)
