"""`moa manifests`: the Kubernetes side of moa.api -- generated CRDs and offline validation.

A plain click group so other components can attach commands to it (`manifests.add_command`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group()
def manifests() -> None:
    """Kubernetes manifests: CRDs generated from the resource models, offline validation."""


@manifests.command("crds")
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one file per CRD into this folder instead of printing them.",
)
def crds(output: Path | None) -> None:
    """Print the CustomResourceDefinitions (AdapterTraining, Adapter)."""
    from moa.api.crd import RESOURCES, crd_yaml

    if output is None:
        click.echo("---\n".join(crd_yaml(r) for r in RESOURCES), nl=False)
        return
    output.mkdir(parents=True, exist_ok=True)
    for r in RESOURCES:
        path = output / r.file_name
        path.write_text(crd_yaml(r))
        click.echo(f"wrote {path}")


@manifests.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True))
def validate(files: tuple[str, ...]) -> None:
    """Validate AdapterTraining/Adapter YAML offline: schema and CEL rules, as the API server would.

    Prints one line per error (field path and rule), or one OK line per document; exit code 1 on
    any error. `-` reads standard input.
    """
    from moa.api.validate import validate_text

    failed = False
    for name in files:
        text = sys.stdin.read() if name == "-" else Path(name).read_text()
        results = validate_text(text, name)
        if not results:
            click.echo(f"{name}: no documents", err=True)
            failed = True
        for result in results:
            failed |= not result.ok
            for line in result.lines():
                click.echo(line, err=not result.ok)
    if failed:
        sys.exit(1)
