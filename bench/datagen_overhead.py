"""What `moa datagen mutate` costs on top of running each language's mutation tool by hand, and how
many verified caught mutants it yields per core-minute, for every language plugin, in one run.

    .venv/bin/python bench/datagen_overhead.py [--source LANG=REF ...] [--sample 6] [--skip-raw] [--draw N]

Without --source: the first curated source (that ships tests) of every plugin with a mutation runner.
Per source, in the same run, from the same cached download:
- raw: the runner's `prepare` on a private copy, then the tool's own command line on every mutant
  (`runner.raw_command`), unsandboxed: what a person would type;
- moa: `moa datagen mutate --no-verify --all-operators`, uncapped: every mutant, sandboxed,
  normalised, diff-checked;
- with --draw N, both sides run only the mutants moa draws for `--max-mutations N` (seeded, N x
  oversample of them; the same ones on both sides): for packages whose every mutant takes hours
  (jmespath has ~1,500). Runners whose raw command cannot be narrowed (go, rust) refuse it;
- moa+verify: `moa datagen mutate` as the pipeline runs it (default operator mix, verification) on a
  draw of --sample pairs: verified caught mutants per core-minute, the figure that sizes a seed run.
Wall time is measured for each; moa/raw is the overhead (goal <= 1.15x). A core-minute is a wall
minute times the cores the run holds (the runners test one mutant per core), which is how pods are
sized; child CPU time is not used because processes reaped inside bwrap's pid namespace do not
report theirs to us. Then: the core-hours of >= 3,000 verified caught per language at that rate.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from moa.api.records import SourceRef
from moa.datagen.mutate import MutateConfig
from moa.languages import registry
from moa.languages.sources import fetch

SEED_TARGET = 3000  # verified caught pairs per language the seed dataset needs
BIG = "1000000"


CORES = os.cpu_count() or 1
OVERSAMPLE = MutateConfig.oversample  # the dataclass default: mutants run per wanted pair


def timed(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None, what: str = "", ok: tuple[int, ...] = (0,)
) -> float:
    """Run `cmd` to the end; its wall seconds."""
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if proc.returncode not in ok:
        sys.exit(f"{what or cmd[0]} failed (exit {proc.returncode}): {(proc.stdout + proc.stderr)[-1500:]}")
    return time.monotonic() - start


def raw(language: str, ref: SourceRef, work: Path, draw: int | None) -> float:
    """Prepare (same code as moa's) and the tool's own command on every mutant, or on those moa
    draws for `--max-mutations draw`; the runner's default parallelism (one test run per CPU) and
    draw (seed 0, every operator), as in moa."""
    plugin = registry.get(language)
    assert plugin.mutation_runner is not None
    runner = plugin.mutation_runner()
    runner.ensure_tool()  # installing the tool is timed on neither side
    repo = work / "raw" / ref.slug
    shutil.copytree(fetch(ref), repo, symlinks=True)
    start = time.monotonic()
    runner.prepare(repo)
    if draw is None:
        cmd, env, ok = runner.raw_command(repo)  # type: ignore[attr-defined]
    elif "sample" not in inspect.signature(runner.raw_command).parameters:  # type: ignore[attr-defined]
        sys.exit(f"--draw: {runner.tool}'s raw command runs every mutant, it cannot be narrowed")
    else:  # the tool's budget in mutate: max(1, int(max_mutations * oversample))
        cmd, env, ok = runner.raw_command(repo, max(1, int(draw * OVERSAMPLE)))  # type: ignore[attr-defined]
    prepared = time.monotonic() - start
    return prepared + timed(cmd, repo, env, f"{runner.tool} on {ref}", ok)


def moa(language: str, ref: SourceRef, out: Path, *extra: str) -> tuple[float, dict[str, object]]:
    cmd = [
        str(Path(sys.executable).with_name("moa")),
        "datagen",
        "mutate",
        "-l",
        language,
        "--source",
        str(ref),
    ]
    cmd += ["-o", str(out), "-j", "1", *extra]
    t = timed(cmd, Path.cwd(), None, f"moa datagen mutate on {ref}")
    stats: dict[str, object] = json.loads((out / ref.slug / "stats.json").read_text())
    return t, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--source", action="append", default=[], help="LANG=REF, e.g. go=go:github.com/google/uuid@v1.6.0"
    )
    ap.add_argument("--sample", type=int, default=6, help="pairs moa+verify keeps per source")
    ap.add_argument("--skip-raw", action="store_true", help="only the moa+verify rate (no uncapped runs)")
    ap.add_argument(
        "--draw", type=int, help="raw and moa sides run the mutants drawn for --max-mutations N, not all"
    )
    args = ap.parse_args()
    pairs = [tuple(s.split("=", 1)) for s in args.source] or [
        (p.name, str(next(s.ref for s in p.default_sources if s.ships_tests)))
        for p in registry.plugins().values()
        if p.mutation_runner is not None and any(s.ships_tests for s in p.default_sources)
    ]
    rows = []
    for language, text in pairs:
        ref = SourceRef.parse(text)
        work = Path(tempfile.mkdtemp(prefix="moa-bench-"))
        try:
            row: dict[str, object] = {"language": language, "source": str(ref)}
            if not args.skip_raw:
                r = raw(language, ref, work, args.draw)
                cap = BIG if args.draw is None else str(args.draw)
                m, stats = moa(language, ref, work / "moa", "--no-verify", "--all-operators",
                               "--max-mutations", cap, "--max-per-function", BIG, "--max-per-operator", BIG)  # fmt: skip
                row |= {"raw_s": r, "moa_s": m, "mutants": stats.get("total"), "ratio": m / r}
            v, vstats = moa(language, ref, work / "verify", "--max-mutations", str(args.sample))
            verified = int(vstats.get("verified", 0) or 0)  # type: ignore[call-overload]
            row |= {"verified": verified, "verify_s": v, "caught_per_core_min": verified / (v * CORES / 60)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print_table(rows)


def print_table(rows: list[dict[str, object]]) -> None:
    print(
        "\n| language | source | mutants | raw s | moa s | moa/raw | verified | caught/core-min | core-h for 3,000 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        rate = r.get("caught_per_core_min")
        cost = f"{SEED_TARGET / rate / 60:.1f}" if isinstance(rate, float) and rate > 0 else "n/a"

        def f(key: str, fmt: str = "{:.0f}", row: dict[str, object] = r) -> str:
            value = row.get(key)
            return fmt.format(value) if isinstance(value, int | float) else "-"

        print(
            f"| {r['language']} | {r['source']} | {f('mutants')} | {f('raw_s')} | {f('moa_s')} | "
            f"{f('ratio', '{:.2f}x')} | {r['verified']} | {f('caught_per_core_min', '{:.2f}')} | {cost} |"
        )


if __name__ == "__main__":
    main()
