"""The ``evaluate`` command: score a model's stored predictions against the stored labels."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from segflow_cli.commands import DaskAddressOption, DaskWorkersOption, dask_options
from segflow_cli.common import (
    DEFAULT_STORE,
    CredentialsBlockOption,
    EndpointOption,
    StoreOption,
    merge,
    store_location,
    validated,
)
from segflow_cli.runner import run_flow

if TYPE_CHECKING:  # the report's package imports scikit-learn: loaded when the command runs
    from segflow.evaluation import EvaluationReport, TableData

__all__ = ["evaluate"]

#: Sequences printed in the per-sequence table; --json has them all.
MAX_SEQUENCE_ROWS = 50


def evaluate(
    store: StoreOption = DEFAULT_STORE,
    model_tag: Annotated[
        str, typer.Option(help="The model's tag: scores predictions/<tag>/ in the store.")
    ] = "default",
    ids: Annotated[list[str] | None, typer.Option("--id", help="Only these sequences.")] = None,
    pattern: Annotated[
        str | None, typer.Option(help="Shell-style pattern on ids, e.g. 'test-*'.")
    ] = None,
    partition: Annotated[str | None, typer.Option(help="Only this partition (date).")] = None,
    checkpoints: Annotated[
        str | None,
        typer.Option(help="Where the model was exported: its config gives the task."),
    ] = None,
    plots_dir: Annotated[
        str | None, typer.Option(help="Write PNGs (confusion matrix, curves, a sequence) here.")
    ] = None,
    plot_sequence: Annotated[
        str | None, typer.Option(help="Sequence drawn against its labels (default: the first).")
    ] = None,
    start_frame: Annotated[
        int,
        typer.Option(
            help="Score only rows for frames at or after this one (a held-out tail: a split "
            "in time).",
        ),
    ] = 0,
    dask_address: DaskAddressOption = None,
    dask_workers: DaskWorkersOption = None,
    s3_endpoint: EndpointOption = None,
    credentials_block: CredentialsBlockOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Score the stored predictions of --model-tag against the labels, beside baselines."""
    from flows.evaluate import evaluate as evaluate_flow
    from segflow.config import CheckpointConfig, EvaluateParams
    from segflow.evaluation import EvaluationReport

    overrides = {
        "store": store_location(store, s3_endpoint, credentials_block),
        "model_tag": model_tag,
        "selection": {"ids": ids or None, "pattern": pattern, "partition": partition},
        # Absolute: the flow process writes the plots, and may not share this shell's cwd.
        "plots_dir": None if plots_dir is None else str(Path(plots_dir).resolve()),
        "plot_sequence": plot_sequence,
        "start_frame": start_frame,
        **dask_options(dask_address, dask_workers),
    }
    params = validated(EvaluateParams, merge({}, overrides))
    location = None
    if checkpoints is not None:
        location = validated(
            CheckpointConfig, store_location(checkpoints, s3_endpoint, credentials_block)
        )
    flow_fn = partial(evaluate_flow, checkpoints=location)
    report = run_flow(flow_fn, params, "evaluate", expected=EvaluationReport)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
        return
    print_report(report, Console())


def print_report(report: EvaluationReport, out: Console) -> None:
    """Print the summary, per-class and per-sequence tables, row counts, notes and plots."""
    from segflow.evaluation import class_table, sequence_table, summary_table
    from segflow.evaluation.report import describe_gaps

    # Metrics as rows: ten metric columns do not fit an 80-column terminal.
    out.print(rich_table(summary_table(report).transposed()))
    per_class = class_table(report)
    if per_class is not None:
        out.print(rich_table(per_class))
    out.print(rich_table(sequence_table(report), limit=MAX_SEQUENCE_ROWS))
    counts = report.counts
    out.print(
        f"rows scored {counts.scored}; left out: unlabelled {counts.unlabelled}, past the end "
        f"{counts.past_end}, no prediction {counts.no_prediction}, no history {counts.no_history}"
        + (f", before the start frame {counts.before_start}" if counts.before_start else "")
    )
    for line in [*describe_gaps(report), *report.notes]:
        out.print(f"note: {line}", markup=False)
    for path in report.plots:
        out.print(f"plot: {path}", markup=False)


def rich_table(data: TableData, *, limit: int | None = None) -> Table:
    """A Rich table of ``data`` (the first ``limit`` rows, with a caption for the rest)."""
    rows = data.rows if limit is None else data.rows[:limit]
    hidden = len(data.rows) - len(rows)
    caption = f"... {hidden} more rows (--json for all)" if hidden else None
    table = Table(title=data.title, caption=caption)
    for index, column in enumerate(data.columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table
