#!/usr/bin/env python3
"""moa-download URL ALGO:DIGEST FILE: download URL to FILE and check its pinned digest.

Used by the plugins' toolchain.sh in the image build (the build stage has python3, not curl).
ALGO is sha256 (hex) or sha512 (base64, as npm's `integrity` writes it).
"""

import base64
import hashlib
import sys
import urllib.request


def main(url: str, pinned: str, out: str) -> int:
    algo, _, want = pinned.partition(":")
    digest = hashlib.new(algo)
    with urllib.request.urlopen(url, timeout=120) as resp, open(out, "wb") as fh:
        while chunk := resp.read(1 << 20):
            digest.update(chunk)
            fh.write(chunk)
    got = digest.hexdigest() if algo == "sha256" else base64.b64encode(digest.digest()).decode()
    if got != want:
        print(f"moa-download: {url}: {algo} {got} != pinned {want}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
