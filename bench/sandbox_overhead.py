"""What the local sandbox costs per run, against running the same command directly, in one run.

    .venv/bin/python bench/sandbox_overhead.py [--runs 20]

Sides (same command, same machine, interleaved so load affects both alike):
- direct: `subprocess.run([python, -c, pass])`;
- sandbox: `moa.languages.sandbox.run` (bwrap + user namespace + seccomp + rlimits + cgroups);
- a real test run: pytest on a two-test file, direct vs sandboxed.
Also the time to assemble the seccomp filter. Prints medians and sandbox/direct ratios.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from moa.languages import sandbox, seccomp

TEST = "def test_a():\n    assert 1 + 1 == 2\n\n\ndef test_b():\n    assert 'x'.upper() == 'X'\n"


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    work = Path(tempfile.mkdtemp(prefix="moa-bench-sandbox-"))
    (work / "test_x.py").write_text(TEST)
    trivial = [sys.executable, "-c", "pass"]
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_x.py"]
    results: dict[str, list[float]] = {
        k: [] for k in ("direct", "sandbox", "pytest direct", "pytest sandbox")
    }
    for _ in range(runs):
        results["direct"].append(timed(lambda: subprocess.run(trivial, cwd=work, check=True)))
        results["sandbox"].append(timed(lambda: sandbox.run(trivial, work)))
        results["pytest direct"].append(timed(lambda: subprocess.run(pytest, cwd=work, capture_output=True)))
        results["pytest sandbox"].append(timed(lambda: sandbox.run(pytest, work)))
    build = min(timed(seccomp.program) for _ in range(200))
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"isolation: {sandbox.isolation()}")
    print(f"runs per side: {runs}")
    for k, v in med.items():
        print(f"{k:>15}: median {v * 1000:8.1f} ms")
    print(
        f"trivial command: sandbox/direct = {med['sandbox'] / med['direct']:.2f}x (+{(med['sandbox'] - med['direct']) * 1000:.0f} ms)"
    )
    print(f"pytest run:      sandbox/direct = {med['pytest sandbox'] / med['pytest direct']:.2f}x")
    print(f"seccomp filter: {len(seccomp.program()) // 8} instructions, assembled in {build * 1e6:.0f} us")


if __name__ == "__main__":
    main()
