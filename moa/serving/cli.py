"""`moa serve` and `moa detect`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TextIO

import click


@click.command()
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    help="A `moa run` workdir: serve its registry's production adapters.",
)
@click.option(
    "--registry",
    "registry_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An adapter_registry.yaml (`moa registry export`).",
)
@click.option("--cluster", is_flag=True, help="Watch the Adapter resources of --namespace instead.")
@click.option("--namespace", default="default", show_default=True)
@click.option(
    "--artifact-root",
    type=click.Path(path_type=Path),
    default=Path("/artifacts"),
    show_default=True,
    help="Where Adapter artifact paths are mounted (--cluster).",
)
@click.option(
    "--engine", "engine_name", type=click.Choice(["peft", "upstream"]), default="peft", show_default=True
)
@click.option("--base", help="The base model (default: the base model the served adapters record).")
@click.option(
    "--upstream", "upstream_url", help="The OpenAI-compatible server of --engine upstream (e.g. vLLM)."
)
@click.option("--upstream-api-key", envvar="MOA_UPSTREAM_API_KEY", help="Bearer token for --upstream.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--poll-interval", default=2.0, show_default=True, help="Seconds between registry checks.")
@click.option("--window-ms", default=5.0, show_default=True, help="Micro-batching window (peft engine).")
@click.option("--max-batch", default=8, show_default=True, help="Requests per micro-batch (peft engine).")
@click.option("--default-language", help="The language moa-auto falls back to (default: the first served).")
@click.option(
    "--allow-runtime-lora", is_flag=True, help="Enable /v1/load_lora_adapter and /v1/unload_lora_adapter."
)
@click.option(
    "--print-vllm-args", is_flag=True, help="Print the vLLM flags for the current production set and exit."
)
def serve(
    workdir: Path | None,
    registry_file: Path | None,
    cluster: bool,
    namespace: str,
    artifact_root: Path,
    engine_name: str,
    base: str | None,
    upstream_url: str | None,
    upstream_api_key: str | None,
    host: str,
    port: int,
    poll_interval: float,
    window_ms: float,
    max_batch: int,
    default_language: str | None,
    allow_runtime_lora: bool,
    print_vllm_args: bool,
) -> None:
    """Serve the production adapters over the OpenAI API (chat completions, models, metrics)."""
    from moa.serving.adapters import ClusterSource, LocalSource, NoRegistry, Source

    chosen = [x for x in (workdir, registry_file, cluster or None) if x]
    if len(chosen) > 1:
        raise click.UsageError("give one of --workdir, --registry, --cluster")
    source: Source
    if cluster:
        source = ClusterSource(namespace, artifact_root)
    elif registry_file is not None:
        source = LocalSource(registry_file)
    elif workdir is not None:
        source = LocalSource(workdir)
    elif not allow_runtime_lora:
        raise click.UsageError(
            "give --workdir, --registry or --cluster (or --allow-runtime-lora with --base)"
        )
    else:
        source = NoRegistry()
    wanted = source.wanted()
    bases = sorted({w.base_model for w in wanted})
    base = base or (bases[0] if bases else None)
    if base is None:
        raise click.UsageError(
            f"no production adapter in {source.description} records a base model: pass --base"
        )
    if print_vllm_args:
        from moa.serving.upstream import vllm_args

        served = {w.name: w.artifact for w in wanted}  # production and canaries
        click.echo("vllm serve " + " ".join(vllm_args(base, served)))
        return
    import uvicorn

    from moa.serving.adapters import AdapterSet
    from moa.serving.app import Settings, create_app
    from moa.serving.engine import Engine
    from moa.serving.metrics import Metrics

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    metrics = Metrics()
    engine: Engine
    if engine_name == "upstream":
        if not upstream_url:
            raise click.UsageError("--engine upstream needs --upstream URL")
        from moa.serving.upstream import UpstreamEngine

        engine = UpstreamEngine(upstream_url, base, api_key=upstream_api_key)
    else:
        from moa.serving.inprocess import InProcessEngine

        engine = InProcessEngine(
            base,
            window_ms=window_ms,
            max_batch=max_batch,
            on_swap=metrics.swap.observe,
            on_batch=lambda adapter, size: metrics.batch.labels(adapter).observe(size),
        )
    adapters = AdapterSet(engine, source, default_language=default_language)
    app = create_app(engine, adapters, metrics, Settings(poll_interval, allow_runtime_lora))
    click.echo(
        f"moa serve: {engine_name} engine, base {base}, {source.description}, http://{host}:{port}/v1",
        err=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="info")


@click.command()
@click.argument("input_file", type=click.File("r"), default="-")
@click.option("--language", "metadata_language", help="As the request's metadata.language would.")
def detect(input_file: TextIO, metadata_language: str | None) -> None:
    """Which adapter's language moa-auto would route a prompt to, and why.

    Reads a prompt from INPUT_FILE (default stdin). JSONL input (every line an object with a
    `prompt` field) prints one JSON line per input line.
    """
    from moa.serving.detect import detect as run

    metadata = {"language": metadata_language} if metadata_language else None
    text = input_file.read()
    records = _jsonl(text.splitlines(), getattr(input_file, "name", "-"))
    if records is None:
        click.echo(json.dumps(run(text, metadata).as_dict()))
        return
    for record in records:
        click.echo(json.dumps(run(str(record["prompt"]), metadata).as_dict()))


def _jsonl(lines: list[str], name: str) -> list[dict[str, object]] | None:
    """The records of JSONL input, None when the input is a plain prompt; a JSONL line without a
    `prompt` is an error naming file:line."""
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    if not numbered or not numbered[0][1].lstrip().startswith("{"):
        return None
    out = []
    for number, line in numbered:
        try:
            record = json.loads(line)
        except ValueError as exc:
            if number == numbered[0][0]:
                return None  # a prompt that merely starts with "{"
            raise click.ClickException(f"{name}:{number}: not JSON: {exc}") from None
        if not isinstance(record, dict) or "prompt" not in record:
            raise click.ClickException(f"{name}:{number}: a JSONL record needs a 'prompt' field")
        out.append(record)
    return out
