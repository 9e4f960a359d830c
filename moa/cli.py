"""The `moa` command.

Sub-groups live next to the code they drive and are imported only when invoked, so
`moa --help` stays fast and a component's heavy dependencies (torch, kubernetes) are
never imported by an unrelated command.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from moa.lazy_group import LazyGroup

# name -> "module:attribute" of a click command or group.
COMMANDS: dict[str, str] = {
    "run": "moa.pipeline.cli:run",
    "datagen": "moa.datagen.cli:datagen",
    "train": "moa.trainer.cli:train",
    "eval": "moa.trainer.evaluate:eval_cmd",
    "merge": "moa.trainer.merge:merge_cmd",
    "registry": "moa.pipeline.cli:registry",
    "serve": "moa.serving.cli:serve",
    "detect": "moa.serving.cli:detect",
    "operator": "moa.operator.cli:operator",
    "manifests": "moa.operator.install:manifests",  # api's crds/validate + install
    "languages": "moa.languages.cli:languages",
    "sandbox": "moa.languages.sandbox_cli:sandbox_group",
    "dev": "moa.dev.cli:dev",
}


class MoaCLI(LazyGroup):
    """Turns any exception into one clear line (the full traceback with --debug)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("standalone_mode", True)
        return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("moa: interrupted", err=True)
            sys.exit(130)
        except Exception as exc:
            if os.environ.get("MOA_DEBUG") or (ctx.params.get("debug")):
                raise
            from moa.api import disk_full

            msg = disk_full.describe(exc) or str(exc).strip() or exc.__class__.__name__
            click.echo(f"moa: error: {msg}", err=True)
            click.echo("  (run with --debug for the traceback)", err=True)
            sys.exit(1)


@click.group(cls=MoaCLI, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option(
    "--unsafe-no-sandbox",
    is_flag=True,
    help="Where bubblewrap is unusable, run untrusted code (mutants, model patches) UNSANDBOXED "
    "with your privileges instead of refusing. Inherited by every stage (MOA_UNSAFE_NO_SANDBOX=1).",
)
@click.version_option(package_name="moa", prog_name="moa")
def cli(debug: bool, unsafe_no_sandbox: bool) -> None:
    """moa — train and serve per-language LoRA adapters for a GPT-OSS coding agent."""
    if debug:
        os.environ["MOA_DEBUG"] = "1"
    if unsafe_no_sandbox:
        os.environ["MOA_UNSAFE_NO_SANDBOX"] = "1"


def main() -> None:
    cli(prog_name="moa")


if __name__ == "__main__":
    main()
