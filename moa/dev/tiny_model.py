"""`moa dev tiny-model`: the tiny GPT-OSS-architecture model that tests and the demo train.

Without `--pretrain` it is random (tests: seconds to build, deterministic). With `--pretrain
--spec FILE` it is first trained on real code from the spec's sources and on Harmony agent
episodes over it (`moa.dev.tiny_corpus`), so that the demo's SFT starts from a model that has
seen code and the agent's format, as a real base model has.
"""

from __future__ import annotations

from pathlib import Path

import click

from moa.api.training import load_training

# A slightly larger shape than the test model when pretraining: room to learn code and the format.
PRETRAIN_SHAPE = {"layers": 2, "hidden": 128, "experts": 4, "vocab_size": 4096}
PRETRAIN_EPISODES = 400


@click.command("tiny-model")
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True, help="Folder to write.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--layers", type=int, default=None, help="Default: 2.")
@click.option("--hidden", type=int, default=None, help="Default: 64 (128 with --pretrain).")
@click.option("--experts", type=int, default=None, help="Default: 4.")
@click.option(
    "--pretrain", is_flag=True, help="Train it briefly on real code and Harmony agent episodes (minutes)."
)
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="AdapterTraining whose language and sources give the pretraining code (needed with --pretrain).",
)
@click.option(
    "--steps", type=int, default=120, show_default=True, help="Pretraining steps (4 x 512 tokens each)."
)
def tiny_model_cmd(
    output: Path,
    seed: int,
    layers: int | None,
    hidden: int | None,
    experts: int | None,
    pretrain: bool,
    spec_path: Path | None,
    steps: int,
) -> None:
    """Write a tiny GPT-OSS-architecture checkpoint + tokenizer (random, or briefly pretrained)."""
    from moa.trainer import tiny_model

    shape = (
        dict(PRETRAIN_SHAPE) if pretrain else {"layers": 2, "hidden": 64, "experts": 4, "vocab_size": 2048}
    )
    shape.update({k: v for k, v in (("layers", layers), ("hidden", hidden), ("experts", experts)) if v})
    texts: list[str] = []
    if pretrain:
        if spec_path is None:
            raise click.UsageError("--pretrain needs --spec FILE: its language and sources give the code")
        from moa.dev.tiny_corpus import corpus

        spec = load_training(spec_path).spec
        click.echo(
            f"pretraining text: {spec.language} files of {', '.join(spec.data.sources)} + agent episodes"
        )
        texts = corpus(spec.language, spec.data.sources, PRETRAIN_EPISODES, seed)
    head_std = None if pretrain else tiny_model.LM_HEAD_STD
    path = tiny_model.build(output, seed=seed, tokenizer_text=texts, head_std=head_std, **shape)  # type: ignore[arg-type]
    if not pretrain:
        click.echo(f"wrote tiny random GPT-OSS model (not a trained model) to {path}")
        return
    record = tiny_model.pretrain(path, texts, tiny_model.Pretraining(steps=steps, seed=seed), click.echo)
    click.echo(
        f"wrote tiny GPT-OSS model to {path}: pretrained {steps} steps in {record['seconds']:.0f}s, "
        f"loss {record['first_loss']:.2f} -> {record['final_loss']:.2f} (a toy: it knows the format, not the craft)"
    )
