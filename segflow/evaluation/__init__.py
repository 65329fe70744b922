"""Evaluation: stored predictions scored against stored labels, with scikit-learn.

:func:`evaluate` selects sequences, reads the predictions of a model tag and the labels,
lines them up (:mod:`~segflow.evaluation.align`: horizon, windowed rows, unlabelled frames,
one label per sequence), scores the model and trivial baselines on the same rows
(:mod:`~segflow.evaluation.metrics`, :mod:`~segflow.evaluation.scoring`) and draws PNGs
(:mod:`~segflow.evaluation.plots`). The result is a frozen
:class:`~segflow.evaluation.report.EvaluationReport`, whose tables are plain rows.
"""

from segflow.evaluation.align import Aligned, align_many_to_many, align_many_to_one, last_known
from segflow.evaluation.metrics import (
    ClassificationScores,
    ClassScores,
    OutputScores,
    RegressionScores,
    Scores,
    classification_scores,
    regression_scores,
)
from segflow.evaluation.report import (
    Baseline,
    EvaluationReport,
    RowCounts,
    SequenceScore,
    TableData,
    class_table,
    markdown,
    sequence_table,
    summary_table,
)
from segflow.evaluation.run import Evaluation, evaluate, infer_task, score
from segflow.evaluation.scoring import score_aligned

__all__ = [
    "Aligned",
    "Baseline",
    "ClassScores",
    "ClassificationScores",
    "Evaluation",
    "EvaluationReport",
    "OutputScores",
    "RegressionScores",
    "RowCounts",
    "Scores",
    "SequenceScore",
    "TableData",
    "align_many_to_many",
    "align_many_to_one",
    "class_table",
    "classification_scores",
    "evaluate",
    "infer_task",
    "last_known",
    "markdown",
    "regression_scores",
    "score",
    "score_aligned",
    "sequence_table",
    "summary_table",
]
