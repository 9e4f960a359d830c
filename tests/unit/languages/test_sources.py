"""Fetching sources from real registries (cached under a test-local MOA_CACHE) and refusing bad ones."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from moa.api.records import SourceRef
from moa.languages import sources
from moa.languages.sources import SourceError, fetch


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MOA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "sources"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("source", "expect"),
    [
        ("pypi:iniconfig@2.0.0", "src/iniconfig/__init__.py"),
        ("crates:hex@0.4.3", "src/lib.rs"),
        ("npm:ms@2.1.3", "index.js"),
        ("go:github.com/google/uuid@v1.6.0", "uuid.go"),
    ],
)
def test_fetch_registry_source_unpacks_verified_tree(cache: Path, source: str, expect: str) -> None:
    tree = fetch(source)
    assert (tree / expect).is_file()
    assert tree == cache / SourceRef.parse(source).registry / SourceRef.parse(source).slug
    assert fetch(source) == tree  # cached: same tree, no second download


@pytest.mark.slow
def test_tampered_cached_archive_is_refused(cache: Path) -> None:
    tree = fetch("pypi:iniconfig@2.0.0")
    archive = cache / "pypi" / "_archives" / "iniconfig-2.0.0.tar.gz"
    assert archive.is_file()
    import shutil

    shutil.rmtree(tree)
    archive.write_bytes(archive.read_bytes() + b"tampered")
    with pytest.raises(SourceError, match=r"pypi:iniconfig@2.0.0: sha256 mismatch .*tampered"):
        fetch("pypi:iniconfig@2.0.0")
    assert not tree.exists()  # nothing unpacked from the bad archive


def test_unknown_version_names_the_source(cache: Path) -> None:
    with pytest.raises(SourceError, match=r"pypi:iniconfig@0.0.999"):
        fetch("pypi:iniconfig@0.0.999")


def test_path_and_git_sources(cache: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("x = 1\n")

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=repo,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "one")
    first = git("rev-parse", "HEAD")
    (repo / "a.py").write_text("x = 2\n")
    git("commit", "-qam", "two")

    copied = fetch(f"path:{repo}")
    assert (copied / "a.py").read_text() == "x = 2\n" and not (copied / ".git").exists()
    cloned = fetch(f"git:{repo}#{first}")
    assert (cloned / "a.py").read_text() == "x = 1\n"
    with pytest.raises(SourceError, match="git checkout failed"):
        fetch(f"git:{repo}#deadbeef")


@pytest.fixture(params=["tar filters", "python without tar filters"])
def tar_filters(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both unpack paths: Python >= 3.11.4's data filter, and the checks by hand that moa's
    images need (Debian bookworm's Python 3.11.2 has no filters)."""
    if request.param != "tar filters":
        monkeypatch.delattr(tarfile, "data_filter")


@pytest.mark.usefixtures("tar_filters")
def test_unpack_refuses_escaping_members(tmp_path: Path) -> None:
    ref = SourceRef.parse("path:/x")
    for name, kind in (
        ("../evil.py", tarfile.REGTYPE),
        ("/abs.py", tarfile.REGTYPE),
        ("pkg/link", tarfile.SYMTYPE),
        ("pkg/fifo", tarfile.FIFOTYPE),
    ):
        archive = tmp_path / "bad.tar.gz"
        with tarfile.open(archive, "w:gz") as tf:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            data = b"print('x')\n"
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        dest = tmp_path / "out"
        dest.mkdir(exist_ok=True)
        with pytest.raises(SourceError, match="refusing"):
            sources.unpack(ref, archive, dest)
        assert not (tmp_path / "evil.py").exists()


@pytest.mark.usefixtures("tar_filters")
def test_unpack_keeps_links_inside_the_tree_and_drops_setuid(tmp_path: Path) -> None:
    archive = tmp_path / "ok.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        data = b"print('x')\n"
        for name, kind, link, mode in (
            ("pkg-1.0/src/a.py", tarfile.REGTYPE, "", 0o4755),
            ("pkg-1.0/src/b.py", tarfile.SYMTYPE, "a.py", 0o777),
        ):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode = kind, link, mode
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    dest = tmp_path / "out"
    dest.mkdir()
    sources.unpack(SourceRef.parse("path:/x"), archive, dest)
    assert (dest / "src" / "b.py").read_bytes() == data
    assert not (dest / "src" / "a.py").stat().st_mode & 0o6000
