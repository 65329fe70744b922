"""The ``segflow`` command line (Typer + Rich).

Stable forms (scripts call them)::

    segflow synth videos OUT_DIR [--count N --frames N --size N --seed N]
    segflow ingest SOURCE... --store URL [--id ID] [--segment-length N] [--labels PATH]
    segflow inspect --store URL --json
    segflow demo
    segflow backfill --start DATE --end DATE --archive URL [--ordered] [--force] [--dry-run]
    segflow serve [--landing DIR] [--archive URL] [--nightly-cron CRON]
"""

from __future__ import annotations

import os

import typer

from segflow.runtime import configure_runtime
from segflow_cli import commands
from segflow_cli.serve import serve
from segflow_cli.synth import synth_app

__all__ = ["app", "main"]

# The command line is an entry point: set up the process before a command imports TensorFlow.
configure_runtime()
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

app = typer.Typer(
    help="segflow: long segmented sequences into Zarr v3 and through a stateful LSTM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(synth_app, name="synth")
for command in (
    commands.ingest,
    commands.train,
    commands.predict,
    commands.inspect,
    commands.demo,
    commands.backfill,
    serve,
):
    app.command()(command)


def main() -> None:
    """Entry point for ``python -m segflow_cli``."""
    app()
