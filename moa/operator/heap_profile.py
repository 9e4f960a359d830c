"""Heap snapshots of the running operator, to attribute its memory: `MOA_TRACEMALLOC=DIR`.

Off unless the variable is set (tracemalloc roughly doubles allocation cost). When set, Python's
allocations are traced from start-up and, every MOA_TRACEMALLOC_EVERY seconds (default 15), a
snapshot is written to DIR/peak.tracemalloc whenever the traced heap is larger than at the last
one, so the file holds the heap near its peak. Compare two runs' files with
`tracemalloc.Snapshot.load(...).compare_to(other, "lineno")`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import tracemalloc
from pathlib import Path

log = logging.getLogger("moa.operator")


def start_from_env() -> None:
    out = os.environ.get("MOA_TRACEMALLOC")
    if not out:
        return
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(int(os.environ.get("MOA_TRACEMALLOC_FRAMES", "12")))
    every = float(os.environ.get("MOA_TRACEMALLOC_EVERY", "15"))
    threading.Thread(target=_keep_peak, args=(directory, every), name="tracemalloc", daemon=True).start()
    log.warning("tracing Python allocations into %s (MOA_TRACEMALLOC): slower, for profiling only", directory)


def _keep_peak(directory: Path, every: float) -> None:
    written = 0
    while True:
        time.sleep(every)
        current, _ = tracemalloc.get_traced_memory()
        if current > written:
            tmp = directory / "peak.tracemalloc.tmp"
            tracemalloc.take_snapshot().dump(str(tmp))
            tmp.replace(directory / "peak.tracemalloc")
            written = current
            log.info("heap snapshot: %.1f MB traced", current / 1e6)
