"""`moa datagen fetch`: everything `mutate` will need from the network, downloaded before it runs.

Why a stage of its own: mutate executes untrusted code (every mutant runs the package's tests),
so its pods get no network at all. Fetch runs first, in a pod whose egress reaches the package
registries only, and executes nothing of the source's beyond what installing it does:

per source: the registry archive (verified against the registry's checksum, unpacked under
``cache/sources``) -> the scratch tree mutate will use (``cache/scratch/{lang}/...``) -> the
mutation tool (already baked into a sandbox image) -> the runner's ``prepare`` with the
language's download caches pointed into ``cache/`` (the plugin's `offline_cache`).

Mutate then runs the same ``prepare`` with the plugin's offline switches on (pip --no-index,
cargo --offline, GOPROXY=off, npm --offline) and finds everything there. `moa run` does the
same, so local mutation needs no network either. Fetch also builds each source's *prepared
tree* (``cache/prepared/{lang}/...``, `moa.agent.workspace.prepared_tree`): the copy every
agent workspace of trajectories, preferences, GRPO and eval starts from, whose pods have no
network either. A source's scratch folder holds a `.fetched`
marker once complete; re-running fetch skips it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from moa.agent.workspace import prepared_tree
from moa.api.layout import METRICS
from moa.api.records import SourceRef
from moa.api.stages import StageConfig, StageSummary
from moa.languages import registry
from moa.languages.sources import fetch as fetch_tree
from moa.languages.tools import cache_dir
from moa.stage import already_done, config_option, exit_with

FETCHED = ".fetched"


class NotFetched(RuntimeError):
    """Mutate was asked to run offline on a source the fetch stage has not downloaded."""


def log(ref: SourceRef | str, msg: str) -> None:
    click.echo(f"[fetch] {ref}: {msg}", err=True)


def scratch_dir(language: str, output: Path, ref: SourceRef) -> Path:
    """The source's working tree folder, shared by fetch and mutate (keyed by mutate's output)."""
    key = hashlib.sha256(f"{output.resolve()}|{ref}".encode()).hexdigest()[:12]
    return cache_dir() / "scratch" / language / f"{ref.slug}-{key}"


@contextlib.contextmanager
def toolchain_env(language: str, *, offline: bool) -> Iterator[None]:
    """The plugin's download caches in os.environ, its no-network switches on (offline) or off."""
    cache = registry.get(language).offline_cache
    wanted: dict[str, str | None] = dict(cache.env(cache_dir())) if cache else {}
    if cache:
        wanted.update({k: (v if offline else None) for k, v in cache.offline.items()})
        if not offline and os.environ.get("SSL_CERT_FILE"):
            wanted.update(dict.fromkeys(cache.ca_env, os.environ["SSL_CERT_FILE"]))
    saved = {k: os.environ.get(k) for k in wanted}
    for key, value in wanted.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def checkout(work: Path, ref: SourceRef) -> Path:
    """The source's tree at `work`/repo: downloaded (cached) and copied once."""
    repo = work / "repo"
    if not (work / ".copied").is_file():
        tree = fetch_tree(ref)
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(tree, repo, symlinks=True, ignore=shutil.ignore_patterns(".moa-source.json"))
        (work / ".copied").write_text(str(ref))
    return repo


def is_fetched(work: Path) -> bool:
    return (work / FETCHED).is_file()


def fetch_source(language: str, output: Path, ref: SourceRef) -> dict[str, Any]:
    """Download one source and everything its tests need; idempotent."""
    work = scratch_dir(language, output, ref)
    if is_fetched(work):
        log(ref, "fetched already, skipped")
        return {**json.loads((work / FETCHED).read_text()), "resumed": True}
    plugin = registry.get(language)
    if plugin.mutation_runner is None:
        raise RuntimeError(f"language {language} has no mutation runner")
    runner = plugin.mutation_runner()
    start = time.monotonic()
    with toolchain_env(language, offline=False):
        repo = checkout(work, ref)
        runner.ensure_tool()
        runner.prepare(repo)
        # A second prepare of the same source, not a copy of the first: a venv is not
        # relocatable, and the download caches make this one quick.
        prepared_tree(language, str(ref))
    row = {"source": str(ref), "status": "fetched", "seconds": round(time.monotonic() - start, 1)}
    (work / FETCHED).write_text(json.dumps(row) + "\n")
    log(ref, f"fetched and prepared in {row['seconds']:.0f}s")
    return row


def run_stage(language: str, output: Path, refs: list[SourceRef], metrics_path: Path) -> StageSummary:
    start = time.monotonic()
    rows: list[dict[str, Any]] = []
    for ref in refs:
        try:
            rows.append(fetch_source(language, output, ref))
        except Exception as err:  # one bad source is reported, the others still fetched
            log(ref, f"failed: {err}")
            rows.append({"source": str(ref), "status": "failed", "reason": str(err)[-1500:]})
    failed = [r for r in rows if r["status"] == "failed"]
    summary = StageSummary(
        stage="fetch",
        status="failed" if failed else "succeeded",
        metrics={
            "sources_fetched": float(len(rows) - len(failed)),
            "sources_failed": float(len(failed)),
            "seconds": round(time.monotonic() - start, 1),
        },
        message="; ".join(f"{r['source']}: {r['reason'][:300]}" for r in failed)[:1500],
    )
    summary.write(metrics_path)
    return summary


@click.command("fetch")
@config_option(required=False)
@click.option("--language", "-l", help="Language plugin (when not using --config).")
@click.option("--source", "sources", multiple=True, help="REGISTRY:NAME@VERSION, git:URL#REV or path:DIR.")
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    help="The mutate output folder these sources are fetched for (without --config).",
)
def fetch_cmd(
    config_path: Path | None, language: str | None, sources: tuple[str, ...], output: Path | None
) -> None:
    """Download sources and their test dependencies into moa's cache, so mutate runs offline."""
    if config_path:
        stage = StageConfig.load(config_path)
        language, output = stage.spec.language, stage.layout.mutations
        texts = [stage.shard] if stage.shard else list(sources) or list(stage.spec.data.sources)
        metrics_path = (
            stage.output_dir if stage.shard else stage.layout.cache / "fetched" / language
        ) / METRICS
    elif language and output is not None:
        texts, metrics_path = list(sources), output / "fetch-metrics.json"
    else:
        raise click.UsageError("give --config STAGE.yaml, or --language and --output")
    if not texts:  # as mutate: the plugin's curated sources that ship their tests
        texts = [str(s.ref) for s in registry.get(language).default_sources if s.ships_tests]
    if not texts:
        raise click.UsageError(f"no sources to fetch: give --source ({language} has no default sources)")
    done = already_done("fetch", metrics_path.parent, lambda line: click.echo(line, err=True))
    if done is not None:
        exit_with(done, metrics_path.parent)
    exit_with(
        run_stage(language, output, [SourceRef.parse(t) for t in texts], metrics_path), metrics_path.parent
    )
