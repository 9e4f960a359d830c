"""How much the evaluation workspace and cache save, measured on a real crate (fnv).

    .venv/bin/python bench/eval_cache.py [--source crates:fnv@1.0.7] [--runs 3]

Prints, each against the cold evaluation measured in the same run:
- cold: a fresh cache root (no warm target/, no outcome cache);
- warm: a different patch in the same slot (dependencies and target/ reused, crate rebuilt);
- hit:  the identical patch again (served from the outcome cache);
- parallel: N distinct patches through evaluate_many vs one after another.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from moa.harmony.patch import make_patch
from moa.languages.evaluation import evaluate_many, evaluate_patch
from moa.languages.sources import fetch

SITE = "            hash = hash ^ (*byte as u64);\n"
VARIANTS = ["|", "&", "+", "-", "*"]


def patch_for(lib: str, op: str) -> str:
    return make_patch({"lib.rs": (lib, lib.replace(SITE, SITE.replace("^", op)))})


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.monotonic()
    fn(*args, **kwargs)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", default="crates:fnv@1.0.7")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    repo = fetch(args.source)
    lib = (repo / "lib.rs").read_text()
    with tempfile.TemporaryDirectory(prefix="moa-bench-") as tmp:
        os.environ["MOA_CACHE"] = tmp  # cold: nothing shared with earlier runs
        cache = Path(tmp) / "outcomes"
        cold = timed(evaluate_patch, "rust", repo, patch_for(lib, "|"), cache_dir=cache)
        warm = timed(evaluate_patch, "rust", repo, patch_for(lib, "&"), cache_dir=cache)
        hit = timed(evaluate_patch, "rust", repo, patch_for(lib, "&"), cache_dir=cache)
        batch = [(repo, patch_for(lib, op)) for op in VARIANTS[2:]]
        serial = sum(timed(evaluate_patch, "rust", r, p, cache_dir=Path(tmp) / "serial") for r, p in batch)
        parallel = timed(evaluate_many, "rust", batch, workers=args.workers, cache_dir=Path(tmp) / "parallel")
    print(f"{args.source}: cold {cold:.2f}s")
    print(f"warm slot   {warm:.2f}s  = {cold / warm:.1f}x faster than cold")
    print(f"cache hit   {hit * 1000:.1f}ms = {cold / hit:.0f}x faster than cold")
    print(
        f"{len(batch)} patches: serial {serial:.2f}s, parallel ({args.workers} workers) {parallel:.2f}s = {serial / parallel:.2f}x"
    )


if __name__ == "__main__":
    main()
