"""The ``segflow`` command line (Typer + Rich).

Stable forms (scripts call them)::

    segflow synth videos OUT_DIR [--count N --frames N --size N --seed N]
    segflow ingest SOURCE... --store URL [--id ID] [--segment-length N] [--labels PATH]
    segflow inspect --store URL --json
    segflow evaluate --store URL --model-tag TAG [--id ID ...] [--pattern P]
                     [--checkpoints URL] [--plots-dir DIR] [--plot-sequence ID] [--json]
    segflow demo
    segflow backfill --start DATE --end DATE --archive URL [--ordered] [--force] [--dry-run]
    segflow serve [--landing DIR] [--archive URL] [--nightly-cron CRON]
    segflow server start [--port N] | status | stop

Importing this module imports neither Prefect, zarr nor TensorFlow: each command imports what
it needs when it runs, so ``segflow --help`` answers at once and ``inspect`` never loads
TensorFlow. A user error (any :class:`~segflow.errors.SegflowError`) prints one line and
exits 1; ``--debug`` or ``SEGFLOW_DEBUG=1`` adds its traceback. A bug prints its traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from segflow.errors import SegflowError
from segflow.runtime import configure_runtime
from segflow_cli import commands
from segflow_cli.common import DEBUG_ENV, fail
from segflow_cli.evaluate import evaluate
from segflow_cli.serve import serve
from segflow_cli.server import connect, server_app
from segflow_cli.synth import synth_app
from segflow_cli.tempserver import start_early

__all__ = ["FLOW_COMMANDS", "app", "main"]

# The command line is an entry point: set up the process before a command imports TensorFlow.
configure_runtime()
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

#: The commands that run flows: they connect to a Prefect server (or start a temporary one).
FLOW_COMMANDS = frozenset({"ingest", "train", "predict", "evaluate", "demo", "backfill", "serve"})
#: Those that run a flow in this process: without a server they start the temporary one early.
IN_PROCESS_FLOW_COMMANDS = FLOW_COMMANDS - {"serve"}


class SegflowGroup(TyperGroup):
    """The app's group: a :class:`SegflowError` escaping a command ends it on one line."""

    # Any: Typer's group takes the Context of the click it vendors (a private module).
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except SegflowError as error:
            raise fail(error) from None


app = typer.Typer(
    cls=SegflowGroup,
    help="segflow: long segmented sequences into Zarr v3 and through a stateful LSTM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(synth_app, name="synth")
app.add_typer(server_app, name="server")
for command in (
    commands.ingest,
    commands.train,
    commands.predict,
    evaluate,
    commands.inspect,
    commands.demo,
    commands.backfill,
    serve,
):
    app.command()(command)


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        typer.echo(f"segflow {version('segflow')}")
        raise typer.Exit()


@app.callback()
def _options(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help=f"Print full tracebacks (or set {DEBUG_ENV}=1).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"
    # A model factory is the user's own module, named by import path from where segflow runs
    # (as `python -m` finds modules); appended, so it never shadows an installed package.
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    if ctx.invoked_subcommand in FLOW_COMMANDS:
        api = connect()
        # click parses the command's own --help after this callback: no server for a help page.
        wants_help = "--help" in sys.argv[1:]
        if api is None and ctx.invoked_subcommand in IN_PROCESS_FLOW_COMMANDS and not wants_help:
            start_early()


def main() -> None:
    """Entry point for ``python -m segflow_cli``."""
    app()
