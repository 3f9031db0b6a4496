"""What every ``driftline`` command shares: the Typer app, consoles, errors, settings."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    help="driftline: streaming drift monitoring that closes the loop to model updates.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(
    help="The model registry: versions, champion, rollbacks.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
reference_app = typer.Typer(
    help="Reference profiles: a model's training inputs, so its detectors need no warm-up.",
    no_args_is_help=True,
)
app.add_typer(reference_app, name="reference")
console = Console()
errors = Console(stderr=True)

LogLevel = Annotated[str, typer.Option("--loglevel", help="debug, info, warning or error")]


def fail(message: str, code: int = 1) -> None:
    errors.print(f"[red]error:[/red] {escape(message)}")  # a message may hold [brackets]
    raise typer.Exit(code)


def settings():
    from contracts.settings import Settings

    try:
        return Settings.from_env()
    except ValueError as exc:
        fail(str(exc), 2)


def registry():
    from learners.registry import ModelRegistry

    return ModelRegistry.from_settings(settings())


def serve_metrics(kind: str, default_port: int) -> None:
    """Serve this process's Prometheus metrics on ``DRIFTLINE_METRICS_PORT`` (``0``: off).

    Default ports: worker 9310, learner 9311, bridge 9312 (the dashboard serves ``/metrics`` on
    its own port).  A taken port is a warning, not a crash: monitoring keeps running."""
    from prometheus_client import start_http_server

    port = int(os.environ.get("DRIFTLINE_METRICS_PORT", default_port))
    if port == 0:
        return
    address = os.environ.get("DRIFTLINE_METRICS_ADDRESS", "0.0.0.0")
    try:
        start_http_server(port, addr=address)
    except OSError as exc:
        logging.getLogger("driftline").warning(
            "%s: /metrics not served on port %d (%s); set DRIFTLINE_METRICS_PORT", kind, port, exc
        )
        return
    logging.getLogger("driftline").info("%s: Prometheus metrics on :%d/metrics", kind, port)
