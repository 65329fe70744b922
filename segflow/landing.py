"""Ingest, then predict: land sources in the store and predict the sequences they landed in.

The one composition of ingest and prediction. The nightly job runs it over what arrived in
its landing folder; a backfill runs it once per partition (:mod:`segflow.backfill.partition`).
The two differ only in what a failed source means:

* nightly (``partial=True``): the sequences that did land are still predicted, and the job
  ends failed afterwards;
* a backfill partition (``partial=False``): the day is one unit, so nothing is predicted and
  the day is recorded as failed (a rerun completes it).

The nightly job may also fine-tune its model on the sequences labelled tonight before it
predicts (:mod:`segflow.finetune`): the new version predicts once it is whole, else the one in
use does. A failed prediction or fine-tune is recorded in the result, never raised, so the
caller can still report what landed. Only errors outside segflow's own (a bug, a lost
connection while ingesting) propagate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from segflow.config import FineTune, IngestParams, NightlyParams, PredictParams, SelectionConfig
from segflow.errors import SegflowError, SourceNotFoundError
from segflow.progress import StepCallback
from storage.validation import require_positive_int

if TYPE_CHECKING:  # both import their sources' and engine's stacks: loaded when first run
    from segflow.finetune import FineTuneResult
    from segflow.ingest import IngestReport, IngestResult
    from segflow.predicting import PredictReport

__all__ = [
    "LandingResult",
    "NightlyReport",
    "error_message",
    "fine_tune_landed",
    "ingest_then_predict",
    "landed_predict_params",
    "nightly_ingest_params",
    "nightly_pairs",
    "nightly_predict_params",
    "predict_landed",
]

#: Sources the nightly job ingests at once (as many as the ingest flow's thread runner).
NIGHTLY_WORKERS = 2

# Predictions of a model tag are written under the store's lock, which a second writer in the
# same process would find taken: callers running concurrently (backfill partitions) ingest in
# parallel but take turns to predict.
_PREDICT_LOCK = threading.Lock()

Pair = tuple[str, str]


@dataclass(frozen=True)
class LandingResult:
    """What :func:`ingest_then_predict` did.

    Attributes:
        ingest: The ingest's report: one result per (uri, sequence id) pair, in order.
        prediction: The prediction's report, or None when nothing was predicted.
        predict_error: Why the prediction failed, or ``""``.
        fine_tune: What the fine-tune before the prediction did, when one was asked.
    """

    ingest: IngestReport
    prediction: PredictReport | None = None
    predict_error: str = ""
    fine_tune: FineTuneResult | None = None

    @property
    def failed(self) -> tuple[IngestResult, ...]:
        """The sources that failed to ingest."""
        return self.ingest.failed

    @property
    def landed(self) -> tuple[str, ...]:
        """The sequences that sources landed in, each once, in the order they landed."""
        landed = (r.sequence_id for r in self.ingest.results if r.status != "failed")
        return tuple(dict.fromkeys(landed))

    @property
    def frames(self) -> int:
        """Frames ingested."""
        return self.ingest.summary.frames

    @property
    def predicted(self) -> int:
        """Frames the prediction streamed (0 when nothing was predicted)."""
        return 0 if self.prediction is None else self.prediction.frames

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict: ``ingest``, ``prediction``, ``predict_error``,
        ``fine_tune``."""
        return {
            "ingest": self.ingest.to_json(),
            "prediction": None if self.prediction is None else self.prediction.to_json(),
            "predict_error": self.predict_error,
            "fine_tune": None if self.fine_tune is None else self.fine_tune.to_json(),
        }


def ingest_then_predict(
    pairs: Sequence[Pair],
    ingest_params: IngestParams,
    predict_params: PredictParams | None,
    run_id: str | None = None,
    *,
    workers: int = 1,
    partial: bool = True,
    on_step: StepCallback | None = None,
    fine_tune: FineTune | None = None,
) -> LandingResult:
    """Ingest ``pairs``, then predict the sequences they landed in.

    Args:
        pairs: ``(uri, sequence id)`` of each source, in order (appends land in this order).
        ingest_params: How to ingest; its ``sources`` are not read (``pairs`` say what).
        predict_params: Model, checkpoints and stream of the prediction, whose selection is
            replaced by the landed sequences (sorted); None to ingest only.
        run_id: Recorded by the prediction as its run and lock owner.
        workers: Sources ingested at once; appends always land one after the other.
        partial: Predict the landed sequences even if other sources failed.
        on_step: Called after every prediction step.
        fine_tune: Fine-tune the model on the labelled sequences that landed first, and
            predict with the new version (:func:`fine_tune_landed`).

    Returns:
        What was ingested and predicted; a failed prediction is in ``predict_error``.

    Raises:
        ConfigError: If ``workers`` is not a positive integer.

    >>> ingest_then_predict([], IngestParams(sources=["unused"]), None).landed
    ()
    """
    require_positive_int("workers", workers)
    result = LandingResult(_ingest(pairs, ingest_params, workers))
    selected = landed_predict_params(result, predict_params, partial=partial)
    if selected is None:
        return result
    if fine_tune is not None:
        selected, tuned = fine_tune_landed(selected, fine_tune, result.landed)
        result = replace(result, fine_tune=tuned)
    try:
        return replace(result, prediction=_predict(selected, run_id, on_step))
    except Exception as error:  # noqa: BLE001 - recorded: the caller reports what landed too
        return replace(result, predict_error=error_message(error))


def fine_tune_landed(
    predict_params: PredictParams, settings: FineTune, ids: Sequence[str]
) -> tuple[PredictParams, FineTuneResult]:
    """Fine-tune the model of ``predict_params`` on the labelled sequences of ``ids``; return
    the prediction's parameters with the version to predict with, and what was done.

    A failed fine-tune is recorded in the result, never raised: the version in use predicts.
    """
    from segflow.finetune import FineTuneResult, fine_tune, version_in_use

    try:
        tuned = fine_tune(predict_params, settings, ids)
    except Exception as error:  # noqa: BLE001 - recorded: the night predicts with the old model
        base = version_in_use(predict_params.checkpoints.open(), predict_params.model_tag)
        tuned = FineTuneResult(base, base, error=error_message(error))
    return predict_params.model_copy(update={"model_tag": tuned.model_tag}), tuned


def landed_predict_params(
    result: LandingResult, predict_params: PredictParams | None, *, partial: bool = True
) -> PredictParams | None:
    """``predict_params`` selecting the sequences ``result`` landed in, or None if none is to
    be predicted (nothing landed, no prediction asked, or a failure when not ``partial``).

    >>> landed_predict_params(LandingResult(_empty_report()), PredictParams()) is None
    True
    """
    ids = sorted(result.landed)
    if predict_params is None or not ids or (result.failed and not partial):
        return None
    return predict_params.model_copy(update={"selection": SelectionConfig(ids=ids)})


def predict_landed(
    ids: Sequence[str], predict_params: PredictParams, run_id: str | None = None
) -> tuple[PredictReport | None, str]:
    """Predict the sequences ``ids``: the report, or None and why the prediction failed.

    >>> predict_landed([], PredictParams())
    (None, '')
    """
    if not ids:
        return None, ""
    selected = predict_params.model_copy(update={"selection": SelectionConfig(ids=sorted(ids))})
    try:
        return _predict(selected, run_id, None), ""
    except Exception as error:  # noqa: BLE001 - recorded: the caller reports what landed too
        return None, error_message(error)


def _empty_report() -> IngestReport:
    from segflow.ingest import IngestReport

    return IngestReport.build([], seconds=0.0)


def error_message(error: BaseException) -> str:
    """A one-line message: segflow's own errors as they are, others with their type.

    >>> error_message(SegflowError("model 'm' not found"))
    "model 'm' not found"
    >>> error_message(KeyError("frames"))
    "KeyError: 'frames'"
    """
    return str(error) if isinstance(error, SegflowError) else f"{type(error).__name__}: {error}"


def _ingest(pairs: Sequence[Pair], params: IngestParams, workers: int) -> IngestReport:
    from segflow.ingest import IngestReport
    from segflow.ingest.batch import ingest_many

    started = time.perf_counter()
    results = ingest_many(list(pairs), params, threads=workers)  # appends land in order
    return IngestReport.build(results, seconds=time.perf_counter() - started)


def _predict(
    params: PredictParams, run_id: str | None, on_step: StepCallback | None
) -> PredictReport:
    from segflow.predicting import predict

    with _PREDICT_LOCK:
        return predict(params, run_id=run_id, on_step=on_step)


# -- the nightly job -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NightlyReport:
    """The outcome of a nightly run: what landed where, and what became of it.

    Attributes:
        landing: Where new recordings were looked for.
        result: What was ingested and predicted; None when nothing landed.
    """

    landing: str
    result: LandingResult | None = None

    @property
    def failed(self) -> bool:
        """Whether a source failed to ingest, or the fine-tune or the prediction failed."""
        result = self.result
        if result is None:
            return False
        tune_error = result.fine_tune is not None and bool(result.fine_tune.error)
        return bool(result.failed or result.predict_error or tune_error)

    @property
    def message(self) -> str:
        """One line (more for failed sources) for the run's state and logs.

        >>> NightlyReport("./landing").message
        'nothing landed'
        """
        result = self.result
        if result is None:
            return "nothing landed"
        tuned = "" if result.fine_tune is None else f" ({result.fine_tune.message})"
        if result.predict_error:
            return f"predict failed: {result.predict_error}{tuned}"
        if result.failed:
            return f"ingest failed: {result.ingest.failure_message()}{tuned}"
        if result.fine_tune is not None and result.fine_tune.error:
            return (
                f"{result.fine_tune.message}; {len(result.landed)} sequences ingested and predicted"
            )
        return f"{len(result.landed)} sequences ingested and predicted{tuned}"

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict: ``landing``, ``message``, ``failed``, ``result``."""
        return {
            "landing": self.landing,
            "message": self.message,
            "failed": self.failed,
            "result": None if self.result is None else self.result.to_json(),
        }


def nightly_ingest_params(params: NightlyParams) -> IngestParams:
    """How the nightly job ingests: everything under ``params.landing``."""
    return IngestParams(
        sources=[params.landing],
        store=params.store,
        append=params.append,
        source=params.source,
        write=params.write,
        dask_address=params.dask_address,
        dask_workers=params.dask_workers,
    )


def nightly_predict_params(params: NightlyParams) -> PredictParams | None:
    """How the nightly job predicts (its selection: what landed), or None if it does not."""
    if not params.predict:
        return None
    return PredictParams(
        store=params.store,
        checkpoints=params.checkpoints,
        model_tag=params.model_tag,
        stream=params.stream,
        dask_address=params.dask_address,
        dask_workers=params.dask_workers,
    )


def nightly_pairs(params: NightlyParams) -> list[Pair]:
    """``(uri, sequence id)`` of every source under ``params.landing``; none if it is missing.

    Raises:
        ConfigError: If two sources would land in the same sequence (unless appending).
    """
    from segflow.ingest.batch import plan_sources

    try:
        return plan_sources(nightly_ingest_params(params))
    except SourceNotFoundError:
        return []
