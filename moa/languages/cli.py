"""`moa languages`: the installed language plugins, what each can do, and detection.

Plugins come from the `moa.languages` entry-point group, so this lists third-party
languages exactly like the built-in ones. A capability a plugin has not built is shown as
absent: the list says what will work, not what is planned.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from moa.languages import registry, tools

CAPABILITIES = ("detect", "route", "mutate", "evaluate", "sources")


@click.group(invoke_without_command=True)
@click.pass_context
def languages(ctx: click.Context) -> None:
    """List the installed language plugins (or detect a file's language)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_cmd)


@languages.command("list")
def list_cmd() -> None:
    """Each plugin: its extensions, capabilities and where it comes from."""
    found = registry.plugins()
    if not found:
        raise click.ClickException(
            "no language plugins installed (none in the 'moa.languages' entry-point group)"
        )
    width = max(len(name) for name in found)
    for name, plugin in found.items():
        caps = plugin.capabilities()
        shown = "  ".join(f"{cap}:{'yes' if caps.get(cap) else 'absent'}" for cap in CAPABILITIES)
        click.echo(f"{name:<{width}}  {' '.join(plugin.extensions) or '(no extensions)'}")
        click.echo(f"{'':<{width}}  {shown}")
        click.echo(f"{'':<{width}}  from {registry.origin(name)}")


@languages.command("detect")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--all", "show_all", is_flag=True, help="Show every plugin's score, best first.")
def detect_cmd(file: Path, show_all: bool) -> None:
    """Detect the language of FILE ('-' reads the snippet from standard input).

    A known extension decides (score 1.00); otherwise the plugins' markers are scored.
    """
    if str(file) == "-":
        text, filename = sys.stdin.read(), None
    else:
        text, filename = file.read_text(encoding="utf-8", errors="replace"), file.name
    ranked = registry.scores(text, filename)
    if not ranked or ranked[0][1] <= 0:
        raise click.ClickException(
            f"no installed plugin recognises {file} (installed: {', '.join(registry.plugins())})"
        )
    for name, score in ranked if show_all else ranked[:1]:
        click.echo(f"{name}\t{score:.2f}")


@languages.command("install-tools")
@click.argument("language")
def install_tools_cmd(language: str) -> None:
    """Install LANGUAGE's tools now (into MOA_TOOLS, else the cache), as their first use would:
    its mutation tool and what its evaluator runs besides the toolchain.

    Image builds run this so sandbox pods, which have no network, find them baked in.
    """
    from moa.languages.evaluators import ToolchainEvaluator

    plugin = registry.plugins().get(language)
    if plugin is None:
        raise click.ClickException(
            f"unknown language {language!r} (installed: {', '.join(registry.plugins())})"
        )
    installed = []
    if plugin.mutation_runner is not None:
        runner = plugin.mutation_runner()
        runner.ensure_tool()
        installed.append(runner.tool)
    evaluator = plugin.evaluator() if plugin.evaluator is not None else None
    if isinstance(evaluator, ToolchainEvaluator):
        installed += evaluator.install_tools()
    click.echo(f"{language}: {', '.join(installed) or 'nothing'} installed under {tools.tools_dir()}")
