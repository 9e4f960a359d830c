"""Go modules worth mutating: small, well-tested libraries, newest tagged version on the proxy.

Module zips from the Go proxy always carry the `_test.go` files, so every entry ships tests
(checked by downloading each zip, 2026-11-24). What can still fail is a test that needs the
network or testdata outside the module; such a module fails its baseline and is reported.
"""

from moa.api.records import SourceRef
from moa.languages.base import CuratedSource


def _mod(spec: str, note: str = "") -> CuratedSource:
    return CuratedSource(SourceRef.parse(f"go:{spec}"), True, note)


SOURCES = (
    _mod("github.com/google/uuid@v1.6.0", "the quick end-to-end example: 30 caught of the first 60 mutants"),
    _mod("github.com/pkg/errors@v0.9.1"),
    _mod("github.com/hashicorp/golang-lru/v2@v2.0.7"),
    _mod("github.com/cespare/xxhash/v2@v2.3.0", "bit twiddling: many arithmetic/bitwise mutants"),
    _mod("github.com/google/go-cmp@v0.7.0"),
    _mod("github.com/Masterminds/semver/v3@v3.5.0"),
    _mod("github.com/gobwas/glob@v1.1.0"),
    _mod("github.com/dustin/go-humanize@v1.1.0"),
    _mod("github.com/hashicorp/go-version@v1.9.0"),
    _mod("github.com/BurntSushi/toml@v1.6.0", "larger; parser and encoder"),
    _mod("github.com/pmezard/go-difflib@v1.0.0"),
    _mod("github.com/spf13/pflag@v1.1.0"),
    _mod("github.com/mitchellh/mapstructure@v1.5.0"),
    _mod("github.com/go-logfmt/logfmt@v0.6.1"),
    _mod("github.com/armon/go-radix@v1.0.0"),
    _mod("github.com/rivo/uniseg@v0.4.7", "table-driven Unicode tests"),
    _mod("github.com/google/btree@v1.1.3"),
)
