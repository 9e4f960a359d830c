"""`moa operator`: run the operator, or reconcile one training once (debugging)."""

from __future__ import annotations

import json
import os

import click


@click.group()
def operator() -> None:
    """The Kubernetes operator that drives AdapterTrainings through their stages."""


@operator.command("run")
@click.option(
    "--namespace", "-n", "namespaces", multiple=True, help="Watch these namespaces (default: cluster-wide)."
)
@click.option("--kubeconfig", default=None, help="Default: in-cluster config, else KUBECONFIG.")
@click.option("--resync", "resync_s", default=60.0, show_default=True, help="Seconds between full resyncs.")
@click.option("--liveness-port", default=8080, show_default=True, type=int, help="0: no /healthz endpoint.")
@click.option("--metrics-port", default=9090, show_default=True, type=int, help="0: no Prometheus endpoint.")
@click.option("--log-level", default="INFO", show_default=True)
@click.option("--plain-logs", is_flag=True, help="Human-readable logs instead of JSON lines.")
def run_cmd(
    namespaces: tuple[str, ...],
    kubeconfig: str | None,
    resync_s: float,
    liveness_port: int,
    metrics_port: int,
    log_level: str,
    plain_logs: bool,
) -> None:
    """Run the operator until interrupted."""
    if kubeconfig:
        # Before anything imports the kubernetes client: it reads KUBECONFIG once, at import,
        # and kopf's login goes through it.
        os.environ["KUBECONFIG"] = kubeconfig
    from moa.operator.main import run
    from moa.operator.observability import setup_logging

    setup_logging(log_level, json_logs=not plain_logs)
    run(list(namespaces), kubeconfig, resync_s, liveness_port or None, metrics_port or None)


@operator.command("reconcile")
@click.argument("ref", metavar="NAMESPACE/NAME")
@click.option("--kubeconfig", default=None)
def reconcile_cmd(ref: str, kubeconfig: str | None) -> None:
    """Reconcile one AdapterTraining once and print what the planner decided."""
    from moa.operator.kube import Kube, load_client
    from moa.operator.reconcile import reconcile

    namespace, _, name = ref.partition("/")
    if not name:
        raise click.BadParameter("expected NAMESPACE/NAME", param_hint="REF")
    outcome = reconcile(Kube(load_client(kubeconfig)), namespace, name)
    plan = outcome.plan
    click.echo(
        json.dumps(
            {
                "phase": plan.phase if plan else None,
                "stage": plan.stage if plan else None,
                "created": [launch.name for launch in outcome.created],
                "sandbox_created": outcome.sandbox_created,
                "requeue_after": outcome.requeue_after,
            }
        )
    )
