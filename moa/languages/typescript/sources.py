"""TypeScript packages worth mutating, with an honest note on what their npm tarball carries.

Most npm tarballs publish only built JavaScript and type declarations: no TypeScript sources
and no tests, so there is nothing to mutate and nothing to judge a mutant by. We checked the
tarball contents (`npm pack --dry-run`, 2026-11-24) of about 80 popular TypeScript libraries;
the ones below with `ships_tests=True` carry both their .ts sources and their test suites.
The others are listed because they are good code, for `git:` sources on clusters that reach
a git host; from npm they are refused with this note rather than silently producing nothing.
"""

from moa.api.records import SourceRef
from moa.languages.base import CuratedSource


def _pkg(spec: str, ships_tests: bool, note: str) -> CuratedSource:
    return CuratedSource(SourceRef.parse(f"npm:{spec}"), ships_tests, note)


SOURCES = (
    _pkg("ts-dedent@2.3.0", True, "src/ + a Jest suite (run under Vitest): 54 caught of 60 mutants"),
    _pkg("wonka@6.3.6", True, "src/ + Vitest suites in src/__tests__ (they import 4 devDependencies)"),
    _pkg(
        "zod@4.6.7",
        True,
        "src/ + ~200 Vitest files (~150 s a run; 5 import undeclared packages: deselected); large",
    ),
    _pkg("ts-pattern@5.9.2", False, "tarball ships src/ but no tests"),
    _pkg("immer@11.2.10", False, "tarball ships src/ but no tests"),
    _pkg("@sinclair/typebox@0.34.52", False, "tarball ships src/ but no tests"),
    _pkg("neverthrow@8.2.0", False, "tarball ships only dist/"),
    _pkg("remeda@2.61.0", False, "tarball ships only dist/"),
    _pkg("superstruct@2.0.2", False, "tarball ships only dist/"),
    _pkg("valibot@1.5.0", False, "tarball ships only dist/"),
    _pkg("fp-ts@2.16.11", False, "tarball ships only built modules"),
    _pkg("tiny-invariant@1.3.3", False, "src/ only, no tests"),
)
