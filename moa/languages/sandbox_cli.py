"""`moa sandbox run`: run a command exactly as moa runs untrusted code (to debug a baseline that
fails only in the sandbox, or to see what the sandbox allows)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from moa.languages import sandbox


@click.group("sandbox")
def sandbox_group() -> None:
    """The local sandbox for untrusted code (bubblewrap, seccomp, limits)."""


@sandbox_group.command("run", context_settings={"ignore_unknown_options": True})
@click.option(
    "--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path.cwd, show_default="cwd"
)
@click.option("--writable", multiple=True, type=click.Path(path_type=Path), help="Another writable folder.")
@click.option("--network", is_flag=True, help="Keep the host network (moa never does for untrusted code).")
@click.option("--timeout", "timeout_s", type=float, default=600.0, show_default=True, help="Seconds.")
@click.option("--memory-mb", type=int, default=None, help="Default: MOA_SANDBOX_MEMORY_MB or 8192.")
@click.option("--tasks", type=int, default=1024, show_default=True, help="Processes and threads.")
@click.option("--unsafe-no-sandbox", is_flag=True, help="Without bubblewrap, run anyway UNSANDBOXED.")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def run_cmd(
    workdir: Path,
    writable: tuple[Path, ...],
    network: bool,
    timeout_s: float,
    memory_mb: int | None,
    tasks: int,
    unsafe_no_sandbox: bool,
    cmd: tuple[str, ...],
) -> None:
    """Run CMD in the sandbox with WORKDIR as its only writable folder; exits with CMD's status
    (124 on timeout). The isolation in force and any limit hit are printed on stderr."""
    if unsafe_no_sandbox:
        os.environ[sandbox.UNSAFE_ENV] = "1"
    limits = sandbox.Limits(timeout_s=timeout_s, tasks=tasks)
    if memory_mb is not None:
        limits = sandbox.Limits(timeout_s=timeout_s, tasks=tasks, memory_mb=memory_mb)
    try:
        result = sandbox.run(list(cmd), workdir, writable=writable, network=network, limits=limits)
    except sandbox.SandboxUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"moa sandbox: {result.isolation}", err=True)
    sys.stdout.write(result.output)
    for hit in result.limits_hit:
        click.echo(f"moa sandbox: limit hit: {hit}", err=True)
    sys.exit(
        124
        if result.timed_out
        else (result.returncode if result.returncode >= 0 else 128 - result.returncode)
    )
