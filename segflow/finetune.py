"""Fine-tuning a model tag on newly labelled sequences, as a new version of the tag.

The versions of a model tag ``T`` are ordinary model tags: ``T`` itself is version 1, then
``T.v2``, ``T.v3``... Each has its own training run and export, and a version exists once its
export is whole (its manifest is written last, :func:`segflow.registry.export_model`). The
version *in use* is the newest whole one. A fine-tune trains the next version from the one in
use (a warm start, ``init_from``) and never writes under any existing version, so a fine-tune
that fails or is killed leaves the version in use as it was; a later fine-tune of other
sequences discards what it left, one of the same sequences resumes it.

Importing this module does not import TensorFlow; :func:`fine_tune` does.

>>> version_tag("cam", 1), version_tag("cam", 3)
('cam', 'cam.v3')
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from segflow.config import FineTune, PredictParams, SelectionConfig, TrainParams
from segflow.errors import KeyNotFoundError
from segflow.registry import MODELS, best_run_key, export_prefix, has_export, train_run_key

if TYPE_CHECKING:
    from segflow.training import TrainReport
    from storage.base import Store
    from storage.sequences import SequenceRepository

__all__ = [
    "FineTuneResult",
    "current_version",
    "fine_tune",
    "fine_tune_params",
    "labelled",
    "version_in_use",
    "version_tag",
]


def version_tag(model_tag: str, version: int) -> str:
    """The tag of ``version`` of ``model_tag``: the tag itself for 1, else ``<tag>.v<n>``.

    >>> version_tag("m", 2)
    'm.v2'
    """
    return model_tag if version == 1 else f"{model_tag}.v{version}"


def current_version(store: Store, model_tag: str) -> int:
    """The newest version of ``model_tag`` whose export is whole in ``store`` (1 if none is)."""
    pattern = re.compile(rf"{re.escape(MODELS)}/{re.escape(model_tag)}\.v([0-9]+)/")
    found = {int(m.group(1)) for key in store.list(MODELS) if (m := pattern.match(key))}
    whole = [n for n in found if n > 1 and has_export(store, version_tag(model_tag, n))]
    return max(whole, default=1)


def version_in_use(store: Store, model_tag: str) -> str:
    """The tag of the version of ``model_tag`` in use: its newest whole export."""
    return version_tag(model_tag, current_version(store, model_tag))


def labelled(repo: SequenceRepository, ids: Sequence[str]) -> list[str]:
    """The sequences of ``ids`` that are complete and have labels, sorted."""
    found = (repo.info(i) for i in sorted(set(ids)) if repo.exists(i))
    return [info.id for info in found if info.complete and info.has_labels]


def fine_tune_params(
    predict_params: PredictParams, settings: FineTune, ids: Sequence[str], *, base: str, tag: str
) -> TrainParams:
    """The training run fine-tuning ``base`` on ``ids`` into ``tag``, with the prediction's
    store, checkpoints and stream."""
    return TrainParams(
        store=predict_params.store,
        checkpoints=predict_params.checkpoints,
        stream=predict_params.stream,
        selection=SelectionConfig(ids=sorted(ids)),
        epochs=settings.epochs,
        learning_rate=settings.learning_rate,
        seed=settings.seed,
        model_tag=tag,
        init_from=base,
    )


@dataclass(frozen=True)
class FineTuneResult:
    """What became of a fine-tune.

    Attributes:
        model_tag: The version that predicts: the new one if it is whole, else the one in use.
        base: The version in use before (the fine-tune's warm start).
        ids: The labelled sequences it trained on (none: it did not run).
        report: The training run's report, when it ended.
        error: Why it failed, or ``""``; the prediction then uses ``base``.
    """

    model_tag: str
    base: str
    ids: tuple[str, ...] = ()
    report: TrainReport | None = None
    error: str = ""

    @property
    def tuned(self) -> bool:
        """Whether a new version was made and predicts."""
        return self.model_tag != self.base

    @property
    def message(self) -> str:
        """One line for the logs.

        >>> FineTuneResult("m.v2", "m", ("a", "b")).message
        'm fine-tuned on 2 sequences; m.v2 predicts'
        """
        if self.error:
            return f"fine-tune failed: {self.error}; {self.base} predicts"
        if not self.tuned:
            return f"nothing new to fine-tune on; {self.base} predicts"
        return f"{self.base} fine-tuned on {len(self.ids)} sequences; {self.model_tag} predicts"

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {
            "model_tag": self.model_tag,
            "base": self.base,
            "ids": list(self.ids),
            "report": None if self.report is None else self.report.to_json(),
            "error": self.error,
        }


def fine_tune(
    predict_params: PredictParams, settings: FineTune, ids: Sequence[str]
) -> FineTuneResult:
    """Fine-tune the version of ``predict_params.model_tag`` in use on the labelled sequences
    of ``ids``, into the next version.

    Nothing is trained when fewer than ``settings.min_sequences`` are labelled, or when the
    version in use was itself fine-tuned on exactly these sequences (a retry of the same night).

    Returns:
        The result; its ``model_tag`` is the version to predict with.

    Raises:
        SegflowError: If the training fails (the version in use is untouched).
    """
    from segflow.training import train
    from storage.sequences import SequenceRepository

    store = predict_params.checkpoints.open()
    tag = predict_params.model_tag
    version = current_version(store, tag)
    base = version_tag(tag, version)
    chosen = labelled(SequenceRepository(predict_params.store.open()), ids)
    if len(chosen) < settings.min_sequences or _trained_on(store, base) == chosen:
        return FineTuneResult(base, base)
    new = version_tag(tag, version + 1)
    _discard_other_runs(store, new, chosen)
    report = train(fine_tune_params(predict_params, settings, chosen, base=base, tag=new))
    if not has_export(store, new):  # e.g. a run that had nothing to do: never predict with it
        return FineTuneResult(base, base, tuple(chosen), report, f"{new!r} was not exported")
    return FineTuneResult(new, base, tuple(chosen), report)


def _trained_on(store: Store, tag: str) -> list[str] | None:
    """The sequences export ``tag`` was trained on, from its manifest, or None."""
    from segflow.checkpoint import MANIFEST

    try:
        manifest = json.loads(store.read_bytes(f"{export_prefix(tag)}/{MANIFEST}"))
    except (KeyNotFoundError, ValueError):
        return None
    ids = manifest.get("ids") if isinstance(manifest, dict) else None
    return sorted(ids) if isinstance(ids, list) else None


def _discard_other_runs(store: Store, tag: str, ids: list[str]) -> None:
    """Delete what an interrupted fine-tune of other sequences left under ``tag``.

    ``tag`` was never whole, so nothing uses it; a run of the same sequences is kept and
    resumes.
    """
    from segflow.checkpoint import CheckpointManager

    manager = CheckpointManager(store, train_run_key(tag))
    latest = manager.latest()
    if latest is not None and sorted(manager.read_cursor(latest).ids) == ids:
        return
    best = CheckpointManager(store, best_run_key(tag)).prefix
    for prefix in (manager.prefix, best, export_prefix(tag)):
        # Key by key under the folder: a bare prefix would reach ``<tag>0`` on S3 too.
        for key in store.list(prefix):
            if key.startswith(f"{prefix}/"):
                store.delete(key)
