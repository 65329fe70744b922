"""What an evaluation reports: frozen results, their JSON, and tables as plain rows.

The tables are data (a title, column names, rows of strings): the command line renders them
with Rich, the Prefect task as markdown and table artifacts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from segflow.evaluation.metrics import ClassificationScores, Scores, scores_from_json
from segflow.report import markdown_table

__all__ = [
    "Baseline",
    "EvaluationReport",
    "RowCounts",
    "SequenceScore",
    "TableData",
    "class_table",
    "describe_gaps",
    "format_value",
    "markdown",
    "sequence_table",
    "summary_table",
]


@dataclass(frozen=True)
class Baseline:
    """A trivial answer scored on the same rows as the model.

    Attributes:
        name: ``majority``, ``persistence`` or ``mean``.
        description: What it predicts, in words.
        scores: Its scores.
    """

    name: str
    description: str
    scores: Scores

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {"name": self.name, "description": self.description, "scores": self.scores.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Baseline:
        """Rebuild from :meth:`to_json`."""
        return cls(data["name"], data["description"], scores_from_json(data["scores"]))


@dataclass(frozen=True)
class SequenceScore:
    """One sequence's row of the per-sequence table.

    Attributes:
        id: The sequence.
        rows: Rows scored.
        unlabelled: Rows whose label is NaN.
        past_end: Rows forecasting past the last frame.
        no_prediction: Rows without a prediction (the first rows of a windowed model).
        no_history: Rows the persistence baseline cannot cover.
        metric: The metric of the last two columns (``accuracy`` or ``mae``).
        model: The model's value on this sequence (None without rows).
        baseline: The first baseline's value on this sequence.
        before_start: Rows for frames before the first one scored (``start_frame``).
    """

    id: str
    rows: int
    unlabelled: int
    past_end: int
    no_prediction: int
    no_history: int
    metric: str
    model: float | None
    baseline: float | None
    before_start: int = 0


@dataclass(frozen=True)
class RowCounts:
    """Rows over every evaluated sequence: scored, and left out for each reason."""

    scored: int = 0
    unlabelled: int = 0
    past_end: int = 0
    no_prediction: int = 0
    no_history: int = 0
    before_start: int = 0


@dataclass(frozen=True)
class EvaluationReport:
    """The scores of a model's stored predictions against the stored labels.

    Attributes:
        model_tag: The predictions scored (``predictions/<tag>/``).
        task: ``binary``, ``multiclass`` or ``regression``.
        task_source: Where the task came from: ``model config`` or ``inferred``.
        head: ``many_to_many`` or ``many_to_one``.
        horizon: Row t forecasts frame t + horizon.
        outputs: Size of one prediction row.
        class_names: Names of the classes (classification), indices when the store has none.
        model: The model's scores over every scored row.
        baselines: Trivial answers on the same rows (the first is the per-sequence one).
        sequences: One row per evaluated sequence.
        counts: Rows scored and left out.
        missing: Selected sequences without predictions under the tag.
        unlabelled_sequences: Selected sequences without labels.
        incomplete: Sequences whose predictions are not complete (their durable rows count).
        notes: Anything the reader should know (e.g. a model retrained since it predicted).
        plots: PNGs written.
    """

    model_tag: str
    task: str
    task_source: str
    head: str
    horizon: int
    outputs: int
    model: Scores
    baselines: tuple[Baseline, ...] = ()
    class_names: tuple[str, ...] = ()
    sequences: tuple[SequenceScore, ...] = ()
    counts: RowCounts = field(default_factory=RowCounts)
    missing: tuple[str, ...] = ()
    unlabelled_sequences: tuple[str, ...] = ()
    incomplete: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    plots: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (:meth:`from_json` rebuilds the report)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data |= {
            "model": self.model.to_json(),
            "baselines": [b.to_json() for b in self.baselines],
            "sequences": [asdict(s) for s in self.sequences],
            "counts": asdict(self.counts),
        }
        for name in ("class_names", "missing", "unlabelled_sequences", "incomplete", "notes"):
            data[name] = list(data[name])
        data["plots"] = list(self.plots)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvaluationReport:
        """Rebuild from :meth:`to_json`."""
        tuples = ("class_names", "missing", "unlabelled_sequences", "incomplete", "notes", "plots")
        return cls(
            **{k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            | {name: tuple(data.get(name, ())) for name in tuples}
            | {
                "model": scores_from_json(data["model"]),
                "baselines": tuple(Baseline.from_json(b) for b in data.get("baselines", ())),
                "sequences": tuple(SequenceScore(**s) for s in data.get("sequences", ())),
                "counts": RowCounts(**data.get("counts", {})),
            }
        )


@dataclass(frozen=True)
class TableData:
    """A table as plain data: a title, column names and rows of strings."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def records(self) -> list[dict[str, str]]:
        """The rows as ``{column: value}`` dicts (a Prefect table artifact)."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def transposed(self) -> TableData:
        """Columns as rows: a table of many columns and few rows, readable in a terminal.

        The first column's values name the new columns; the old column names head the rows.

        >>> table = TableData("t", ("", "rows", "mae"), (("model", "3", "0.5"), ("zero", "3", "1")))
        >>> table.transposed().columns, table.transposed().rows
        (('', 'model', 'zero'), (('rows', '3', '3'), ('mae', '0.5', '1')))
        """
        columns = (self.columns[0], *(row[0] for row in self.rows))
        rows = tuple(
            (name, *(row[i] for row in self.rows)) for i, name in enumerate(self.columns) if i > 0
        )
        return TableData(self.title, columns, rows)


def format_value(value: float | int | None) -> str:
    """A metric for a table cell: 4 decimals, integers as they are, ``-`` for none.

    >>> format_value(0.123456), format_value(None), format_value(7)
    ('0.1235', '-', '7')
    """
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}"


def summary_table(report: EvaluationReport) -> TableData:
    """The model against each baseline, one row each, on the same rows."""
    metrics = tuple(report.model.headline())
    rows = [("model", str(report.model.rows), *_cells(report.model))]
    rows += [
        (f"baseline: {b.name}", str(b.scores.rows), *_cells(b.scores)) for b in report.baselines
    ]
    how = f", horizon {report.horizon}" if report.horizon else ""
    title = f"{report.model_tag}: {report.task}, {report.head}{how}"
    return TableData(title, ("", "rows", *metrics), tuple(rows))


def _cells(scores: Scores) -> tuple[str, ...]:
    return tuple(format_value(v) for v in scores.headline().values())


def sequence_table(report: EvaluationReport) -> TableData:
    """One row per sequence: rows scored and left out, the model and the first baseline
    (a "before start" column only when a ``start_frame`` left rows out)."""
    metric = report.sequences[0].metric if report.sequences else "score"
    baseline = report.baselines[0].name if report.baselines else "baseline"
    split = report.counts.before_start > 0
    gaps = ("unlabelled", "past end", "no prediction", "no history", "before start")
    columns = ("sequence", "rows", *gaps[: 5 if split else 4], f"model {metric}")
    rows = tuple(
        (
            s.id,
            str(s.rows),
            *(str(n) for n in (s.unlabelled, s.past_end, s.no_prediction, s.no_history)),
            *((str(s.before_start),) if split else ()),
            format_value(s.model),
            format_value(s.baseline),
        )
        for s in report.sequences
    )
    return TableData("per sequence", (*columns, f"{baseline} {metric}"), rows)


def class_table(report: EvaluationReport) -> TableData | None:
    """Per-class precision, recall, F1, support and confusion-matrix row (classification)."""
    if not isinstance(report.model, ClassificationScores):
        return None
    scores = report.model
    predicted = tuple(f"→ {name}" for name in report.class_names)
    columns = ("class", "precision", "recall", "f1", "support", *predicted)
    rows = tuple(
        (
            c.name,
            format_value(c.precision),
            format_value(c.recall),
            format_value(c.f1),
            str(c.support),
            *(str(n) for n in scores.confusion[i]),
        )
        for i, c in enumerate(scores.classes)
    )
    return TableData("per class (rows: true class; →: predicted as)", columns, rows)


def markdown(report: EvaluationReport) -> str:
    """The report as markdown: summary, per-class and per-sequence tables, counts, notes."""
    tables = [summary_table(report), class_table(report), sequence_table(report)]
    parts = [f"# segflow evaluate `{report.model_tag}`"]
    for table in tables:
        if table is not None:
            parts += [f"**{table.title}**", markdown_table(table.columns, table.rows)]
    counts = asdict(report.counts)
    parts.append("Rows: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items()))
    parts += [f"- {line}" for line in describe_gaps(report) + list(report.notes)]
    return "\n\n".join(parts)


def describe_gaps(report: EvaluationReport) -> list[str]:
    """Sentences naming the selected sequences that could not be scored."""
    lines = []
    if report.missing:
        lines.append(f"no predictions under {report.model_tag!r}: {', '.join(report.missing)}")
    if report.unlabelled_sequences:
        lines.append(f"no labels: {', '.join(report.unlabelled_sequences)}")
    if report.incomplete:
        lines.append(
            f"predictions not complete (durable rows scored): {', '.join(report.incomplete)}"
        )
    return lines
