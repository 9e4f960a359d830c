"""Fetch a source (`pypi:attrs@23.2.0`, `crates:hex@0.4.3`, `npm:ms@2.1.3`, `go:MOD@VER`,
`git:URL#REV`, `path:DIR`, or a registry a plugin adds through its `fetchers` hook) into an unpacked, verified tree under ~/.cache/moa/sources.

Why this shape: mutation shards run in parallel pods/processes on the same cache, so every
fetch takes a per-source file lock and publishes the tree by renaming a finished temp folder
(a crash never leaves a half tree behind). Registry archives are kept next to the trees and
re-verified against the registry's checksum whenever they are used: a tampered or truncated
archive is refused, never unpacked. Unpacking refuses absolute paths, `..` and links.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import posixpath
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urljoin

import httpx

from moa.api.records import SourceRef
from moa.languages import registry
from moa.languages.base import Fetcher
from moa.languages.tools import cache_dir, file_lock

_USER_AGENT = "moa-datagen (https://moa.dev; mutation data from public registries)"
_MARKER = ".moa-source.json"  # written into a finished tree; its presence means "complete"


class SourceError(RuntimeError):
    """A source could not be fetched or failed verification; the message names the source."""


def cache_root() -> Path:
    return cache_dir() / "sources"


def fetch(ref: SourceRef | str, root: Path | None = None) -> Path:
    """The unpacked tree of `ref` (downloaded, verified and cached on first use)."""
    ref = SourceRef.parse(ref) if isinstance(ref, str) else ref
    fetcher(ref)  # an unknown registry fails before anything is created
    base = (root or cache_root()) / ref.registry
    dest = base / ref.slug
    base.mkdir(parents=True, exist_ok=True)
    with file_lock(base / f"{ref.slug}.lock"):
        if ref.registry == "path":  # a local checkout may change between runs: always re-copy
            shutil.rmtree(dest, ignore_errors=True)
        elif (dest / _MARKER).is_file():
            return dest
        tmp = Path(tempfile.mkdtemp(prefix=f".{ref.slug}.", dir=base))
        try:
            meta = fetcher(ref)(ref, tmp, base / "_archives")
            (tmp / _MARKER).write_text(json.dumps({"source": str(ref), **meta}, indent=1))
            shutil.rmtree(dest, ignore_errors=True)
            tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


# ---------------------------------------------------------------- HTTP with retries


def http_get(url: str, ref: SourceRef, *, attempts: int = 4) -> httpx.Response:
    last = ""
    for attempt in range(attempts):
        try:
            resp = httpx.get(url, headers={"User-Agent": _USER_AGENT}, follow_redirects=True, timeout=60)
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if resp.status_code == 404:
                raise SourceError(
                    f"{ref}: not found in the registry ({url} -> 404); check the name and version"
                )
            if resp.status_code < 500 and resp.status_code != 429:
                if resp.status_code >= 400:
                    raise SourceError(f"{ref}: {url} -> HTTP {resp.status_code}")
                return resp
            last = f"HTTP {resp.status_code}"
        time.sleep(min(8.0, 0.5 * 2**attempt))
    raise SourceError(f"{ref}: {url} failed after {attempts} attempts ({last}); is the registry reachable?")


def download(
    ref: SourceRef, url: str, archives: Path, filename: str, algo: str, expected: str, encoding: str
) -> Path:
    """Download `url` once into `archives/filename`; verify it (cached or fresh) every time.
    Public, with `http_get` and `unpack`, for the fetchers plugins add."""
    archives.mkdir(parents=True, exist_ok=True)
    path = archives / filename
    if path.is_file():
        _verify(ref, path, algo, expected, encoding, cached=True)
        return path
    data = http_get(url, ref).content
    tmp = path.with_name(f".{filename}.{os.getpid()}.part")
    tmp.write_bytes(data)
    try:
        _verify(ref, tmp, algo, expected, encoding, cached=False)
    except SourceError:
        tmp.unlink()
        raise
    tmp.rename(path)
    return path


def _verify(ref: SourceRef, path: Path, algo: str, expected: str, encoding: str, *, cached: bool) -> None:
    digest = hashlib.new(algo, path.read_bytes()).digest()
    actual = base64.b64encode(digest).decode() if encoding == "base64" else digest.hex()
    if actual != expected:
        hint = (
            f"the cached archive {path} is corrupt or tampered with; delete it to re-download"
            if cached
            else ("the download does not match the registry's checksum; refusing to unpack it")
        )
        raise SourceError(
            f"{ref}: {algo} mismatch for {path.name} (expected {expected}, got {actual}): {hint}"
        )


# ---------------------------------------------------------------- safe unpacking


def _safe_member(ref: SourceRef, name: str) -> PurePosixPath:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or name.startswith(("/", "\\")):
        raise SourceError(f"{ref}: archive member {name!r} escapes the tree; refusing to unpack")
    return p


def unpack(ref: SourceRef, archive: Path, dest: Path) -> None:
    """Unpack into `dest`, dropping the single top-level folder most archives have."""
    staging = dest.with_name(dest.name + ".unpack")
    staging.mkdir()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _safe_member(ref, info.filename)
                    if stat.S_ISLNK(info.external_attr >> 16):
                        raise SourceError(f"{ref}: archive member {info.filename!r} is a symlink; refusing")
                zf.extractall(staging)
        else:
            with tarfile.open(archive) as tf:
                _extract_tar(ref, tf, staging)
        entries = list(staging.iterdir())
        top = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
        for child in top.iterdir():
            shutil.move(str(child), dest / child.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _make_writable(dest)


def _extract_tar(ref: SourceRef, tf: tarfile.TarFile, staging: Path) -> None:
    for m in tf.getmembers():
        _safe_member(ref, m.name)
    if hasattr(tarfile, "data_filter"):
        try:  # the "data" filter refuses absolute or escaping links, devices and setuid bits
            tf.extractall(staging, filter="data")
        except tarfile.FilterError as exc:
            raise SourceError(f"{ref}: unsafe archive member ({exc}); refusing to unpack") from exc
        return
    # Python before 3.11.4 (Debian bookworm's 3.11.2, in moa's images) has no filters: the same
    # policy by hand.
    for m in tf.getmembers():
        if m.issym() or m.islnk():
            base = PurePosixPath(m.name).parent if m.issym() else PurePosixPath()
            target = posixpath.normpath(str(base / m.linkname))
            if m.linkname.startswith("/") or target == ".." or target.startswith("../"):
                raise SourceError(f"{ref}: archive link {m.name!r} points outside the tree; refusing")
        elif not (m.isfile() or m.isdir()):
            raise SourceError(f"{ref}: archive member {m.name!r} is a device or fifo; refusing to unpack")
        m.mode &= 0o777  # no setuid, setgid or sticky bits
    tf.extractall(staging)


def _make_writable(tree: Path) -> None:
    for path in [tree, *tree.rglob("*")]:
        if not path.is_symlink():
            path.chmod(
                path.stat().st_mode | stat.S_IWUSR | stat.S_IRUSR | (stat.S_IXUSR if path.is_dir() else 0)
            )


# ---------------------------------------------------------------- registries


def _pypi(ref: SourceRef, dest: Path, archives: Path) -> dict[str, str]:
    # The project document lists every release; the per-version endpoint is not served by every mirror.
    index_url = f"https://pypi.org/pypi/{quote(ref.name)}/json"
    meta = http_get(index_url, ref).json()
    if ref.version not in meta.get("releases", {}):
        raise SourceError(
            f"{ref}: PyPI has no release {ref.version} (latest: {meta.get('info', {}).get('version')})"
        )
    files = meta["releases"][ref.version]
    sdists = [u for u in files if u.get("packagetype") == "sdist"]
    if not sdists:
        raise SourceError(f"{ref}: PyPI has no sdist for this version (wheels only); pick another version")
    sd = sdists[0]
    url = urljoin(index_url, sd["url"])  # mirrors may serve file URLs relative to the index
    path = download(ref, url, archives, sd["filename"], "sha256", sd["digests"]["sha256"], "hex")
    unpack(ref, path, dest)
    return {"archive": sd["filename"], "sha256": sd["digests"]["sha256"], "url": url}


def _crate_index_path(name: str) -> str:
    n = name.lower()
    if len(n) <= 2:
        return f"{len(n)}/{n}"
    if len(n) == 3:
        return f"3/{n[0]}/{n}"
    return f"{n[:2]}/{n[2:4]}/{n}"


def _crates(ref: SourceRef, dest: Path, archives: Path) -> dict[str, str]:
    index = http_get(f"https://index.crates.io/{_crate_index_path(ref.name)}", ref).text
    entries = [json.loads(line) for line in index.splitlines() if line.strip()]
    match = [e for e in entries if e.get("vers") == ref.version]
    if not match:
        raise SourceError(
            f"{ref}: version not in the crates.io index (latest: {entries[-1]['vers'] if entries else '?'})"
        )
    entry = match[0]
    if entry.get("yanked"):
        raise SourceError(f"{ref}: this version is yanked on crates.io; pick another")
    url = f"https://static.crates.io/crates/{entry['name']}/{entry['name']}-{ref.version}.crate"
    path = download(
        ref, url, archives, f"{entry['name']}-{ref.version}.crate", "sha256", entry["cksum"], "hex"
    )
    unpack(ref, path, dest)
    return {"archive": path.name, "sha256": entry["cksum"], "url": url}


def _npm(ref: SourceRef, dest: Path, archives: Path) -> dict[str, str]:
    name = ref.name.replace("/", "%2f") if ref.name.startswith("@") else quote(ref.name)
    meta = http_get(f"https://registry.npmjs.org/{name}/{quote(ref.version)}", ref).json()
    dist = meta.get("dist") or {}
    url = dist.get("tarball")
    if not url:
        raise SourceError(f"{ref}: the npm metadata has no dist.tarball")
    filename = ref.slug + ".tgz"
    integrity = str(dist.get("integrity", ""))
    if integrity.startswith("sha512-"):
        algo, expected, enc = "sha512", integrity.removeprefix("sha512-"), "base64"
    elif dist.get("shasum"):
        algo, expected, enc = "sha1", dist["shasum"], "hex"
    else:
        raise SourceError(f"{ref}: the npm metadata has no sha512 integrity or shasum to verify against")
    path = download(ref, url, archives, filename, algo, expected, enc)
    unpack(ref, path, dest)
    return {"archive": filename, algo: expected, "url": url}


def _go(ref: SourceRef, dest: Path, archives: Path) -> dict[str, str]:
    """`go mod download` verifies the module zip against the Go checksum database (sum.golang.org)."""
    if not shutil.which("go"):
        raise SourceError(f"{ref}: the `go` toolchain is needed to fetch Go modules; install Go")
    gopath = archives.parent / "_gopath"
    # Verification must not be switched off by the caller's environment.
    env = {
        k: v for k, v in os.environ.items() if k not in ("GONOSUMDB", "GOPRIVATE", "GOINSECURE", "GOFLAGS")
    }
    env.update(GOPATH=str(gopath), GOMODCACHE=str(gopath / "pkg" / "mod"))
    if env.get("GOSUMDB") == "off":
        del env["GOSUMDB"]
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"{ref.name}@{ref.version}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
        timeout=600,
    )
    try:
        info = json.loads(proc.stdout)
    except json.JSONDecodeError:
        info = {}
    if proc.returncode != 0 or info.get("Error") or not info.get("Dir"):
        raise SourceError(f"{ref}: go mod download failed: {info.get('Error') or proc.stderr.strip()[-500:]}")
    shutil.copytree(info["Dir"], dest, dirs_exist_ok=True)
    _make_writable(dest)
    return {"h1": info.get("Sum", ""), "zip": info.get("Zip", "")}


def _git(ref: SourceRef, dest: Path, archives: Path) -> dict[str, str]:
    def git(*args: str, cwd: Path | None = None) -> str:
        proc = subprocess.run(["git", *args], capture_output=True, text=True, cwd=cwd, timeout=600)
        if proc.returncode != 0:
            raise SourceError(f"{ref}: git {args[0]} failed: {proc.stderr.strip()[-500:]}")
        return proc.stdout.strip()

    git("clone", "--quiet", "--no-checkout", ref.name, str(dest))
    git("checkout", "--quiet", "--detach", ref.version or "HEAD", cwd=dest)
    commit = git("rev-parse", "HEAD", cwd=dest)
    shutil.rmtree(dest / ".git")
    return {"commit": commit}


def _copy_ignore(folder: str, names: list[str]) -> set[str]:
    """What a `path:` copy leaves out: version control, and every plugin's dependency and
    build folders."""
    skip = {".git"} | registry.dependency_dirs() | registry.build_dirs()
    return {n for n in names if n in skip}


def _path(ref: SourceRef, dest: Path, archives: Path) -> dict[str, str]:
    src = Path(ref.name).expanduser().resolve()
    if not src.is_dir():
        raise SourceError(f"{ref}: {src} is not a directory")
    shutil.copytree(src, dest, dirs_exist_ok=True, ignore=_copy_ignore, symlinks=True)
    return {"path": str(src)}


_FETCHERS: dict[str, Fetcher] = {
    "pypi": _pypi,
    "crates": _crates,
    "npm": _npm,
    "go": _go,
    "git": _git,
    "path": _path,
}


def fetcher(ref: SourceRef) -> Fetcher:
    """The fetcher for `ref`'s registry: moa's own, else one an installed plugin adds."""
    found = _FETCHERS.get(ref.registry) or registry.fetchers().get(ref.registry)
    if found is None:
        known = ", ".join(sorted({*_FETCHERS, *registry.fetchers()}))
        raise SourceError(f"{ref}: unknown source registry {ref.registry!r} (known: {known})")
    return found
