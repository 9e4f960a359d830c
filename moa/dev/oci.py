"""Tiny OCI image archives written directly, for `ctr image import` on the real node.

The pod sandbox ("pause") and the probe image the node tests use hold one static binary each, so
no Docker engine, registry or base image is needed: a single uncompressed layer, an image config
and a manifest, packed as an OCI image layout in a tar file. Output is byte-for-byte reproducible
(fixed mtimes and ownership), so the image digest changes only when the binary does.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class ImageFile:
    path: str  # inside the image, without the leading "/"
    data: bytes
    mode: int = 0o755


@dataclass(frozen=True)
class Image:
    name: str  # full reference, e.g. moa.local/pause:0123abcd
    files: tuple[ImageFile, ...]
    entrypoint: tuple[str, ...]
    user: str = "65535:65535"
    labels: dict[str, str] = field(default_factory=dict)


def layer_tar(files: tuple[ImageFile, ...]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        parents = sorted({str(Path(f.path).parent) for f in files} - {"."})
        for folder in parents:
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for f in sorted(files, key=lambda f: f.path):
            info = tarfile.TarInfo(f.path)
            info.size, info.mode = len(f.data), f.mode
            tar.addfile(info, io.BytesIO(f.data))
    return buf.getvalue()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_archive(image: Image, out: Path) -> str:
    """Write IMAGE as an OCI layout tar at OUT; returns the manifest digest."""
    layer = layer_tar(image.files)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": list(image.entrypoint), "User": image.user, "Labels": image.labels},
            "rootfs": {"type": "layers", "diff_ids": [digest(layer)]},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": digest(config), "size": len(config)},
            "layers": [{"mediaType": LAYER_TYPE, "digest": digest(layer), "size": len(layer)}],
        },
        sort_keys=True,
    ).encode()
    tag = image.name.rsplit(":", 1)[1]
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": MANIFEST_TYPE,
                    "digest": digest(manifest),
                    "size": len(manifest),
                    "annotations": {
                        "io.containerd.image.name": image.name,
                        "org.opencontainers.image.ref.name": tag,
                    },
                }
            ],
        },
        sort_keys=True,
    ).encode()
    entries = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": index}
    for blob in (layer, config, manifest):
        entries[f"blobs/sha256/{digest(blob).split(':')[1]}"] = blob
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        for folder in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    partial.rename(out)
    return digest(manifest)
