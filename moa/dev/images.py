"""`moa dev images build|list`: moa's container images, built here without a Docker engine.

Why buildah: it builds the same Dockerfiles users build with Docker or BuildKit, as root with
`chroot` isolation, so it needs neither a daemon nor user namespaces. It stores layers with the
kernel's overlayfs when a mount probe shows it works, else with `vfs`, which needs nothing but
copies the whole root file system at every step (the trainer's ~5 GB torch layer filled 46 GB
that way). Its storage lives under ``~/.cache/moa/images/storage-DRIVER``; its `RUN
--mount=type=cache` folders (pip wheels, the baked mutation tools) under
``~/.cache/moa/images/tmp`` through TMPDIR.

The base image is assembled from Debian packages (`debootstrap --variant=minbase`) and stored
under the very name the Dockerfiles' ``ARG BASE`` names, so the Dockerfiles need no local edits.

Each image is cached by content: the hash of its Dockerfile, build arguments, the base image's
id and every file the build context admits (see .dockerignore). An unchanged image is not
rebuilt; its OCI archive (``~/.cache/moa/images/oci/NAME-HASH.tar``, importable with
``ctr -n k8s.io images import``) is reused. A changed moa source rebuilds only the layers after
the source is copied in (buildah's layer cache), and the slow tool builds sit behind cache mounts.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from moa.api.training import IMAGE_REGISTRY, IMAGE_TAG
from moa.dev.k8s_build import cache_root, file_lock
from moa.languages import registry

REPO = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# debootstrap's minbase lacks CA certificates; every image fetches over HTTPS while building.
BASE_PACKAGES = ("ca-certificates",)
BASE_RECIPE = 1  # bump when the base assembly below changes in a way the inputs do not show
CONTEXT_FILES = ("pyproject.toml", "constraints.txt", "README.md")
CONTEXT_DIRS = ("moa", "images")
_BASE_ARG = re.compile(r"^ARG BASE=(\S+)$", re.MULTILINE)


def say(msg: str) -> None:
    click.echo(f"moa dev images: {msg}", err=True)


def images_dir() -> Path:
    return cache_root() / "images"


@dataclass(frozen=True)
class Image:
    """One image to build: a Dockerfile under images/ and its build arguments."""

    name: str  # moa-operator, moa-sandbox-rust, ...
    dockerfile: str  # relative to the repository root
    args: dict[str, str] = field(default_factory=dict)
    # Images whose tag its Dockerfile builds FROM (built first, so it never builds on a stale one).
    needs: tuple[str, ...] = ()

    @property
    def tag(self) -> str:
        return f"{IMAGE_REGISTRY}/{self.name}:{IMAGE_TAG}"


def catalogue() -> list[Image]:
    """Every image moa ships: one sandbox per language plugin that carries an image recipe."""
    out = [Image("moa-operator", "images/operator/Dockerfile")]
    for lang in registry.plugins():
        if (REPO / "moa" / "languages" / lang / "image" / "toolchain.sh").is_file():
            out.append(Image(f"moa-sandbox-{lang}", "images/sandbox/Dockerfile", {"LANGUAGE": lang}))
    # No CUDA base can be fetched here: the trainer is built in its CPU variant (same Dockerfile),
    # with torch from PyPI (TORCH_INDEX empty) as PyTorch's own index may be unreachable.
    out.append(
        Image(
            "moa-trainer",
            "images/trainer/Dockerfile",
            {"VARIANT": "cpu", "TORCH_INDEX": os.environ.get("MOA_TORCH_INDEX", "")},
        )
    )
    out.append(Image("moa-serving", "images/serving/Dockerfile", needs=("moa-trainer",)))
    return out


def selection(only: tuple[str, ...]) -> list[Image]:
    """The images to build for `--only` ONLY (all when empty), with the images they build on, in
    catalogue order: what an image needs is built before it."""
    images = catalogue()
    unknown = set(only) - {i.name for i in images}
    if unknown:
        raise click.ClickException(f"unknown image(s) {sorted(unknown)}; known: {[i.name for i in images]}")
    if not only:
        return images
    needed = set(only) | {n for i in images if i.name in only for n in i.needs}
    return [i for i in images if i.name in needed]


def base_name() -> str:
    """The base image every Dockerfile names in `ARG BASE=...` (they must agree)."""
    names = {m for p in (REPO / "images").glob("*/Dockerfile") for m in _BASE_ARG.findall(p.read_text())}
    if len(names) != 1:
        raise click.ClickException(f"images/*/Dockerfile disagree on ARG BASE: {sorted(names)}")
    return str(names.pop())


# ----------------------------------------------------------------------------- buildah


@functools.cache
def storage_driver() -> str:
    """`overlay` when this kernel mounts an overlay here (layers are diffs), else `vfs`."""
    images_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=images_dir(), prefix="overlay-probe-") as tmp:
        dirs = {n: Path(tmp) / n for n in ("lower", "upper", "work", "merged")}
        for d in dirs.values():
            d.mkdir()
        options = f"lowerdir={dirs['lower']},upperdir={dirs['upper']},workdir={dirs['work']}"
        probe = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", options, str(dirs["merged"])], capture_output=True
        )
        if probe.returncode != 0:
            return "vfs"
        subprocess.run(["umount", str(dirs["merged"])], check=True)
        return "overlay"


def buildah(*args: str, capture: bool = True) -> str:
    root, driver = images_dir(), storage_driver()
    cmd = [
        "buildah",
        "--root",
        str(root / f"storage-{driver}"),
        "--runroot",
        f"/run/moa-buildah-{driver}",
        "--storage-driver",
        driver,
        *args,
    ]
    tmp = root / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp), "BUILDAH_ISOLATION": "chroot", "STORAGE_DRIVER": driver}
    proc = subprocess.run(cmd, env=env, text=True, capture_output=capture)
    if proc.returncode != 0:
        tail = (proc.stdout or "")[-3000:] + (proc.stderr or "")[-3000:]
        raise click.ClickException(
            f"{' '.join(cmd[:1] + list(args[:3]))} failed (exit {proc.returncode}):\n{tail}"
        )
    return proc.stdout or ""


def inspect(ref: str) -> dict[str, Any] | None:
    try:
        out = buildah("inspect", "--type", "image", ref)
    except click.ClickException:
        return None
    return dict(json.loads(out))


def labels_of(info: dict[str, Any]) -> dict[str, str]:
    return dict((info.get("OCIv1") or {}).get("config", {}).get("Labels") or {})


def require_tools() -> None:
    missing = [t for t in ("buildah", "debootstrap") if shutil.which(t) is None]
    if missing:
        raise click.ClickException(
            f"{', '.join(missing)} not found: `apt-get install buildah debootstrap` (Debian packages; "
            "no Docker engine is needed)"
        )
    if os.geteuid() != 0:
        raise click.ClickException(
            "moa dev images builds as root (buildah with chroot isolation, debootstrap)"
        )


# ----------------------------------------------------------------------------- base image


def base_key() -> str:
    recipe = {"suite": SUITE, "mirror": MIRROR, "packages": BASE_PACKAGES, "recipe": BASE_RECIPE}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def ensure_base() -> str:
    """The base image's id, assembling it from Debian packages when its recipe changed."""
    name, key = base_name(), base_key()
    info = inspect(name)
    if info and labels_of(info).get("dev.moa.base-recipe") == key:
        return str(info["FromImageID"])
    say(f"assembling {name} from Debian {SUITE} packages (debootstrap --variant=minbase)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=images_dir(), prefix="rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(rootfs),
                MIRROR,
            ],
            check=True,
            capture_output=True,
        )
        version = (rootfs / "etc" / "debian_version").read_text().strip()
        container = buildah("from", "scratch").strip()
        try:
            mount = Path(buildah("mount", container).strip())
            # What an image needs no copy of: downloaded .debs, package lists, logs.
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "var/log"):
                shutil.rmtree(rootfs / junk, ignore_errors=True)
                (rootfs / junk).mkdir(parents=True)
            subprocess.run(["cp", "-a", f"{rootfs}/.", f"{mount}/"], check=True)
            buildah("umount", container)
            buildah(
                "config",
                "--env",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--cmd",
                "bash",
                "--label",
                f"dev.moa.base-recipe={key}",
                "--label",
                f"org.opencontainers.image.description=Debian {version} minbase, assembled by moa with debootstrap",
                "--label",
                f"org.opencontainers.image.version={version}",
                container,
            )
            buildah("commit", "-q", "--rm", container, name)
        except BaseException:
            subprocess.run(
                ["buildah", "--root", str(images_dir() / f"storage-{storage_driver()}"), "rm", container],
                capture_output=True,
            )
            raise
    if version.split(".")[:2] != name.rsplit(":", 1)[-1].split("-")[0].split(".")[:2]:
        say(f"note: {SUITE} is at Debian {version} while the Dockerfiles name {name}")
    say(f"{name}: Debian {version} in {time.monotonic() - started:.0f}s")
    info = inspect(name)
    assert info is not None
    return str(info["FromImageID"])


# ----------------------------------------------------------------------------- images


def context_files() -> Iterator[Path]:
    for name in CONTEXT_FILES:
        yield REPO / name
    for top in CONTEXT_DIRS:
        for path in sorted((REPO / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                yield path


def content_key(image: Image, base_id: str) -> str:
    """What the image is built from: base, Dockerfile, arguments and every context file."""
    digest = hashlib.sha256()
    digest.update(f"{base_id}\n{image.dockerfile}\n{json.dumps(image.args, sort_keys=True)}\n".encode())
    for path in context_files():
        digest.update(f"{path.relative_to(REPO)}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@dataclass
class Built:
    image: Image
    archive: Path
    key: str
    seconds: float
    cached: bool
    size_bytes: int  # the image's uncompressed layers

    def row(self) -> dict[str, object]:
        return {
            "name": self.image.name,
            "tag": self.image.tag,
            "archive": str(self.archive),
            "key": self.key,
            "size_bytes": self.size_bytes,
            "archive_bytes": self.archive.stat().st_size,
        }


HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def host_trust() -> list[str]:
    """The host's CA bundle for the build's RUN steps only (never stored in an image).

    Why: where egress passes a TLS-inspecting proxy (as on this machine), downloads inside the
    build only verify with the host's extra CAs. Node ignores the system store, hence its ARG.
    """
    if not HOST_CA_BUNDLE.is_file():
        return []
    return [
        f"--volume={HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro",
        f"--build-arg=NODE_EXTRA_CA_CERTS={HOST_CA_BUNDLE}",
    ]


def build(image: Image, base_id: str) -> Built:
    key = content_key(image, base_id)
    archive = images_dir() / "oci" / f"{image.name}-{key[:16]}.tar"
    started = time.monotonic()
    if archive.is_file():
        return Built(image, archive, key, 0.0, True, _size(image.tag))
    say(f"building {image.tag} ({image.dockerfile}{''.join(f' {k}={v}' for k, v in image.args.items())})")
    args = [f"--build-arg={k}={v}" for k, v in image.args.items()] + host_trust()
    buildah(
        "bud",
        "--isolation",
        "chroot",
        "--network",
        "host",
        "--layers",
        "--force-rm",  # a failed build leaves no working containers (and their mounts) behind
        "--pull-never",
        f"--build-arg=BASE={base_name()}",
        *args,
        "-f",
        str(REPO / image.dockerfile),
        "-t",
        image.tag,
        str(REPO),
        capture=False,
    )
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    # The reference inside the archive is the full name, which is what ctr import records.
    buildah("push", "-q", image.tag, f"oci-archive:{partial}:{image.tag}")
    for old in archive.parent.glob(f"{image.name}-*.tar"):
        old.unlink()
    partial.rename(archive)
    prune_replaced()
    return Built(image, archive, key, time.monotonic() - started, False, _size(image.tag))


def prune_replaced() -> None:
    """Remove images that lost their tag to a newer build (the layer cache of the build steps,
    kept as intermediate images, stays): each would otherwise hold its own top layers. Best
    effort: an image still in use stays, and the build it follows has succeeded all the same."""
    replaced = buildah("images", "--filter", "dangling=true", "--format", "{{.ID}}").split()
    try:
        if replaced:
            buildah("rmi", *replaced)
    except click.ClickException as e:
        say(f"kept replaced images still in use ({e.message.splitlines()[-1].strip()})")


def remove_leftover_containers() -> None:
    """Working containers left by a build that failed: with multi-stage builds running stages in
    parallel, `--force-rm` removes the failing stage's container but not a sibling's, which then
    pins its image. Called under the build lock, so no build of ours is using them."""
    leftovers = buildah("containers", "--all", "--quiet").split()
    if leftovers:
        buildah("rm", *leftovers)
        say(f"removed {len(leftovers)} working container(s) an earlier failed build left behind")


_UNITS = {"B": 1, "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9}


def _size(tag: str) -> int:
    """The image's uncompressed size as buildah reports it (e.g. "121 MB"), in bytes."""
    rows = json.loads(buildah("images", "--json", tag) or "[]")
    number, _, unit = str(rows[0].get("size", "0 B")).partition(" ") if rows else ("0", "", "B")
    return int(float(number) * _UNITS.get(unit, 1))


def built_archives() -> dict[str, Path]:
    """Image name -> OCI archive of every image built so far whose archive is still there."""
    index = images_dir() / "images.json"
    rows = json.loads(index.read_text()) if index.is_file() else []
    return {str(r["name"]): Path(r["archive"]) for r in rows if Path(r["archive"]).is_file()}


def record(built: Built) -> None:
    """Add or replace the image's row in ~/.cache/moa/images/images.json."""
    index = images_dir() / "images.json"
    rows = {r["name"]: r for r in (json.loads(index.read_text()) if index.is_file() else [])}
    rows[built.image.name] = built.row()
    index.write_text(json.dumps(sorted(rows.values(), key=lambda r: str(r["name"])), indent=2) + "\n")


@click.group()
def images() -> None:
    """moa's container images (images/*/Dockerfile), built without a Docker engine."""


@images.command("build")
@click.option("--only", "only", multiple=True, help="Build only these (e.g. moa-operator); repeatable.")
def build_cmd(only: tuple[str, ...]) -> None:
    """Build (or reuse by content hash) every image and write its OCI archive.

    Prints one line per image and writes ~/.cache/moa/images/images.json (name, tag, archive).
    """
    require_tools()
    wanted = selection(only)
    images_dir().mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    built: list[Built] = []
    with file_lock(images_dir() / ".lock", say, "another image build is running"):
        remove_leftover_containers()
        base_id = ensure_base()
        for image in wanted:
            built.append(build(image, base_id))
            record(built[-1])  # each image is usable as soon as it is built
    for b in built:
        how = "cached" if b.cached else f"built in {b.seconds:.0f}s"
        click.echo(f"{b.image.tag:<48} {b.size_bytes / 1e6:8.0f} MB  {how:<16} {b.archive}")
    click.echo(
        f"{len(built)} image(s) in {time.monotonic() - started:.0f}s; index: {images_dir() / 'images.json'}"
    )


@images.command("list")
def list_cmd() -> None:
    """The images built so far, with their archives (what `ctr images import` takes)."""
    index = images_dir() / "images.json"
    if not index.is_file():
        raise click.ClickException("no images built yet: run `make images`")
    for row in json.loads(index.read_text()):
        click.echo(f"{row['tag']:<48} {int(row['size_bytes']) / 1e6:8.0f} MB  {row['archive']}")
