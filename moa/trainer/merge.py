"""`moa merge`: the final `{lang}_coding` adapter from the last trained stage.

The last stage is GRPO if it ran, else IPO, else SFT; a stage whose gate failed is refused
(never silently skipped for an earlier one). The output is what serving and the registry
load: the adapter's LoRA tensors alone in a clean safetensors file, its adapter config pointing
at the spec's base model, `provenance.json` (base model, stages with their metrics and gates,
hashes of the data each stage trained on, moa version) and `SHA256SUMS` over every file.
`--full` also writes a standalone merged model under `merged/` (base + adapter folded in).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

import click

from moa.api.layout import METRICS, Layout
from moa.api.stages import StageConfig, StageSummary
from moa.stage import StageDirs, already_done, config_option, exit_with, setup_logging, summarize

log = logging.getLogger("moa.trainer")

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
CHECKSUMS = "SHA256SUMS"


def trained_stages(layout: Layout) -> list[tuple[str, Path, StageSummary]]:
    """The training stages that completed, in pipeline order."""
    found = []
    for stage, path in (
        ("sft", layout.sft_adapter),
        ("ipo", layout.ipo_adapter),
        ("grpo", layout.grpo_adapter),
    ):
        if (path / METRICS).exists():
            found.append((stage, path, StageSummary.read(path / METRICS)))
    return found


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_hash(folder: Path) -> str | None:
    """One hash over the JSONL files of a data folder (names and contents), None if there are none."""
    files = sorted(folder.rglob("*.jsonl")) if folder.is_dir() else []
    if not files:
        return None
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.relative_to(folder)}\0{sha256(f)}\n".encode())
    return digest.hexdigest()


def clean_adapter_weights(source: Path, target: Path) -> int:
    """Only the LoRA tensors, contiguous, with plain metadata; returns the parameter count."""
    from safetensors.torch import load_file, save_file

    tensors = {k: v.contiguous() for k, v in load_file(source).items() if "lora_" in k}
    if not tensors:
        raise ValueError(f"{source} holds no LoRA tensors")
    save_file(tensors, target, metadata={"format": "pt"})
    return sum(t.numel() for t in tensors.values())


def write_checksums(folder: Path) -> Path:
    lines = [
        f"{sha256(p)}  {p.relative_to(folder)}"
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != CHECKSUMS
    ]
    out = folder / CHECKSUMS
    out.write_text("\n".join(lines) + "\n")
    return out


def merge_full(base: Path, adapter: Path, target: Path) -> None:
    """Base + adapter folded into one standalone checkpoint (plain transformers/PEFT, no 4-bit)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    from moa.agent.policy import expert_patterns_accepted

    with expert_patterns_accepted():
        merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    merged.save_pretrained(target, safe_serialization=True)
    AutoTokenizer.from_pretrained(base).save_pretrained(target)


def run_merge(config: StageConfig, output: Path | None = None, full: bool = False) -> StageSummary:
    layout = config.layout
    dirs = StageDirs(output or layout.final_adapter)
    done = already_done("merge", dirs.output)
    if done is not None:
        return done
    stages = trained_stages(layout)
    if not stages:
        raise FileNotFoundError(
            f"no trained adapter under {layout.root / 'checkpoints' / 'adapters'}: run `moa train sft` first"
        )
    last, source, last_summary = stages[-1]
    if last_summary.status != "succeeded":
        raise ValueError(
            f"the last trained stage ({last}, {source}) did not succeed ({last_summary.message}); re-run it before merging"
        )
    log.info("merging the %s adapter %s", last, source)

    result = dirs.result
    if result.exists():
        shutil.rmtree(result)
    result.mkdir(parents=True)
    parameters = clean_adapter_weights(source / ADAPTER_WEIGHTS, result / ADAPTER_WEIGHTS)
    adapter_config = json.loads((source / ADAPTER_CONFIG).read_text())
    adapter_config["base_model_name_or_path"] = config.spec.base_model
    (result / ADAPTER_CONFIG).write_text(json.dumps(adapter_config, indent=2, sort_keys=True))

    data_dirs = {"sft": layout.core_agent_train, "ipo": layout.ipo_train, "grpo": layout.grpo_tasks}
    base_path = layout.base_model(config.spec.base_model)
    provenance = {
        "name": config.name,
        "language": config.spec.language,
        "base_model": config.spec.base_model,
        "base_model_config_sha256": sha256(base_path / "config.json")
        if (base_path / "config.json").exists()
        else None,
        "tiny_random_base": bool(
            json.loads((base_path / "config.json").read_text()).get("moa_tiny_random", False)
        )
        if (base_path / "config.json").exists()
        else None,
        "source_stage": last,
        "stages": [
            {
                "stage": s,
                "status": sm.status,
                "metrics": sm.metrics,
                "gates": [g.to_yaml_dict() for g in sm.gates],
                "data_sha256": data_hash(data_dirs[s]),
            }
            for s, _, sm in stages
        ],
        "lora": config.spec.lora.to_yaml_dict(),
        "moa_version": moa_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (result / "provenance.json").write_text(json.dumps(provenance, indent=2))
    if full:
        log.info("writing the merged standalone model")
        merge_full(base_path, source, result / "merged")
    write_checksums(result)

    metrics = {"adapter_parameters": float(parameters), "stages": float(len(stages)), "full": float(full)}
    summary = summarize("merge", metrics, [], message=f"final adapter from {last}")
    dirs.publish(summary)
    return summary


def moa_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("moa")
    except PackageNotFoundError:
        return "unknown"


@click.command("merge")
@config_option()
@click.option(
    "--output", type=click.Path(path_type=Path), default=None, help="Output folder (default: {lang}_coding)."
)
@click.option("--full", is_flag=True, help="Also write a standalone merged model under merged/.")
def merge_cmd(config_path: Path, output: Path | None, full: bool) -> None:
    """Consolidate the last trained stage into the final {lang}_coding adapter."""
    setup_logging()
    config = StageConfig.load(config_path)
    summary = run_merge(config, output, full)
    exit_with(summary, output or config.layout.final_adapter)
