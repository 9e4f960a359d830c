"""What `moa datagen mutate` costs on top of running mutmut by hand, on one real PyPI source.

    .venv/bin/python bench/datagen_overhead.py [--source pypi:inflection@0.5.1] [--verify-sample 10]

Both sides do the same work in the same run, from the same cached sdist and pip cache:
- raw: a venv with the package (editable) + pytest, mutmut's config, one pytest run, `mutmut run`
  on every mutant — what a person would type, no sandbox;
- moa: `moa datagen mutate --no-verify` with no caps (fetch, prepare, baseline x2, sandboxed
  `mutmut run` on every mutant, export + normalise, dedup, JSONL + stats).
Prints both times and moa/raw (goal <= 1.15x). Verification is extra work raw mutmut never does,
so it is NOT in the ratio: it is measured separately, per caught mutant, on a sample.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from moa.api.records import MutationRecord, SourceRef
from moa.datagen.verify import verify
from moa.languages.python.mutation import VENV, MutmutRunner, base_python, layout, moa_cache
from moa.languages.sources import fetch


def sh(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed: {(proc.stdout + proc.stderr)[-1500:]}")


def raw(tree: Path, work: Path, runner: MutmutRunner) -> float:
    """The hand-made run; mutmut comes from the same tool venv (installing it is not timed on either side)."""
    repo = work / "raw"
    start = time.monotonic()
    shutil.copytree(tree, repo)
    venv = repo / VENV
    sh([base_python(), "-m", "venv", str(venv)], repo)
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--cache-dir",
        str(moa_cache() / "pip"),
    ]
    sh([*pip, "pytest", "-e", "."], repo)
    site = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
    (venv / site / "zz-mutmut.pth").write_text(str(runner.tool_dir / site) + "\n")
    sources, tests = layout(repo)
    cfg = "\n".join(["[mutmut]", "source_paths=", *(f"    {s}" for s in sources)])
    cfg += "\n" + "\n".join(["pytest_add_cli_args_test_selection=", *(f"    {t}" for t in tests)])
    (repo / "setup.cfg").write_text(
        ((repo / "setup.cfg").read_text() if (repo / "setup.cfg").exists() else "") + "\n" + cfg + "\n"
    )
    sh([str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], repo)
    cli = "import sys; from mutmut.__main__ import cli; sys.argv[0] = 'mutmut'; sys.exit(cli())"
    sh([str(venv / "bin" / "python"), "-c", cli, "run", "--max-children", str(runner.jobs)], repo)
    return time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default="pypi:inflection@0.5.1")
    ap.add_argument("--verify-sample", type=int, default=10, help="caught mutants to time verification on")
    args = ap.parse_args()
    ref = SourceRef.parse(args.source)
    runner = MutmutRunner()
    runner.ensure_tool()
    tree = fetch(ref)
    work = Path(tempfile.mkdtemp(prefix="moa-bench-"))
    try:
        t_raw = raw(tree, work, runner)
        print(f"raw mutmut:          {t_raw:8.1f} s", flush=True)

        out = work / "moa"
        moa = str(Path(sys.executable).with_name("moa"))
        big = "1000000"
        cmd = [moa, "datagen", "mutate", "-l", "python", "--source", str(ref), "-o", str(out), "--no-verify"]
        cmd += ["--max-mutations", big, "--max-per-function", big, "--max-per-operator", big]
        start = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        t_moa = time.monotonic() - start
        if proc.returncode != 0:
            sys.exit(f"moa datagen mutate failed: {proc.stderr[-1500:]}")
        stats = json.loads((out / ref.slug / "stats.json").read_text())
        secs = stats["seconds"]
        print(f"moa (no verify):     {t_moa:8.1f} s   ({', '.join(f'{k} {v:.1f}' for k, v in secs.items())})")
        print(f"mutants: {stats['total']} ({stats['counts']}), kept {stats['kept']}")
        print(f"overhead moa/raw:    {t_moa / t_raw:8.2f}x   (goal <= 1.15x; verification not included)")

        records = [MutationRecord.model_validate_json(x) for x in (out / ref.slug / "mutations.jsonl").open()]
        sample = records[: args.verify_sample]
        sources, tests = layout(work / "raw")  # what the runner's baseline needs to know
        (work / "raw" / VENV / ".prepared").write_text(json.dumps({"sources": sources, "tests": tests}))
        start = time.monotonic()
        kept = sum(verify(runner, work / "raw", rec, [], 300).kept for rec in sample)
        per = (time.monotonic() - start) / max(1, len(sample))
        print(
            f"verification (extra): {per:.2f} s per caught mutant ({kept}/{len(sample)} of the sample verified); "
            f"~{per * len(records):.0f} s for all {len(records)} caught, i.e. {per * len(records) / t_moa:.2f}x the run"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
