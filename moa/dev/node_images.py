"""The real node's own images: the pod sandbox ("pause") and the probe the node tests run.

Both hold nodetool (nodetool/main.go), a static Go program compiled once per source hash and
cached under ``~/.cache/moa/node/nodetool-<hash>/``. Image tags are that hash, so a changed
program gets a new tag and kubelet never runs a stale one.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from moa.dev import oci
from moa.dev.k8s_build import cache_root, file_lock, find_go, go_env

REGISTRY = "moa.local"  # never pulled: kubelet finds these already imported (imagePullPolicy Never)


@dataclass(frozen=True)
class NodeImages:
    pause: str
    probe: str
    archives: tuple[Path, ...]


def nodetool_source() -> bytes:
    return resources.files("moa.dev.nodetool").joinpath("main.go").read_bytes()


def build_nodetool(say: Callable[[str], None]) -> Path:
    """The static nodetool binary for the current source, built when missing."""
    source = nodetool_source()
    home = cache_root() / "node" / f"nodetool-{hashlib.sha256(source).hexdigest()[:12]}"
    binary = home / "nodetool"
    with file_lock(home / "build.lock", say, "another process is building nodetool"):
        if binary.exists():
            return binary
        say("building nodetool (pause and probe images)")
        with tempfile.TemporaryDirectory() as work:
            (Path(work) / "go.mod").write_text("module moa.dev/nodetool\n\ngo 1.26\n")
            (Path(work) / "main.go").write_bytes(source)
            partial = home / ".nodetool.partial"
            cmd = [find_go(), "build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), "."]
            result = subprocess.run(cmd, cwd=work, env=go_env(), capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"building nodetool failed:\n{result.stderr[-4000:]}")
            partial.rename(binary)
    return binary


def node_images(say: Callable[[str], None]) -> NodeImages:
    """Archives of the pause and probe images (written once per nodetool build)."""
    binary = build_nodetool(say)
    tag = binary.parent.name.removeprefix("nodetool-")
    tool = (oci.ImageFile("nodetool", binary.read_bytes()),)
    labels = {"org.opencontainers.image.source": "moa/dev/nodetool/main.go"}
    pause = oci.Image(f"{REGISTRY}/pause:{tag}", tool, ("/nodetool", "pause"), labels=labels)
    probe = oci.Image(f"{REGISTRY}/probe:{tag}", tool, ("/nodetool",), labels=labels)
    archives = []
    for image in (pause, probe):
        archive = binary.parent / f"{image.name.split('/')[1].split(':')[0]}.oci.tar"
        if not archive.exists():
            oci.write_archive(image, archive)
        archives.append(archive)
    return NodeImages(pause.name, probe.name, tuple(archives))
