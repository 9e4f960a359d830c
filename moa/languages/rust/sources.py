"""Rust crates worth mutating: the roadmap's list, at their newest stable version on crates.io.

`ships_tests` says whether the published .crate file carries tests we can run (inline
`#[test]`s in src/ or a tests/ folder), checked by downloading each crate (2026-11-24).
Shipping tests is not the same as building standalone: crates whose tests need a workspace
path dependency or a sibling test crate fail `prepare`/baseline and are reported, not mutated.
"""

from moa.api.records import SourceRef
from moa.languages.base import CuratedSource


def _crate(spec: str, ships_tests: bool, note: str = "") -> CuratedSource:
    return CuratedSource(SourceRef.parse(f"crates:{spec}"), ships_tests, note)


SOURCES = (
    _crate("bstr@1.14.0", True, "inline unit tests in src/"),
    _crate("linked-hash-map@0.5.6", False, "the .crate has no tests (tests/ is not published)"),
    _crate(
        "thiserror@2.0.21", True, "tests/ mostly exercise the derive macro; few mutants in the crate itself"
    ),
    _crate("anyhow@1.0.104", True, "tests/ + inline tests"),
    _crate("eyre@0.6.14", True, "tests/"),
    _crate("once_cell@1.21.4", True, "inline unit tests"),
    _crate("bitflags@2.13.2", True, "src/tests/"),
    _crate("log@0.4.35", True, "inline unit tests"),
    _crate("walkdir@2.5.0", True, "src/tests/ (touches the filesystem inside the work folder)"),
    _crate("byteorder@1.5.0", True, "inline unit tests (quickcheck dev-dependency)"),
    _crate("nom@8.0.0", True, "inline unit tests"),
    _crate("serde@1.0.229", False, "serde's tests live in a separate test_suite crate, not in the .crate"),
    _crate(
        "tokio@1.54.1", True, "large; inline tests only (tests/ needs tokio-test and more): slow to mutate"
    ),
    _crate("bytes@1.12.2", True, "inline unit tests + tests/"),
    _crate("http@1.5.0", True, "inline unit tests + tests/"),
    _crate("axum-core@0.5.6", True, "few inline tests; dev-dependencies on axum may not resolve standalone"),
    _crate(
        "hyper@1.12.0",
        True,
        "inline tests; integration tests need features and networking (sandbox has none)",
    ),
    _crate("crossbeam-channel@0.5.17", True, "tests/ (timing-sensitive: baseline runs twice)"),
    _crate("rayon@1.12.0", True, "inline unit tests; tests/ + rayon-core heavy"),
    _crate("hex@0.4.3", True, "small; inline unit tests: the quick end-to-end example"),
)
