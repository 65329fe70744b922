"""Prefect tasks of the demo: synthesize inputs, score predictions, draw and publish."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from segflow.config import DemoParams
from segflow.demo import DemoResult
from segflow.errors import ConfigError
from segflow.report import Score, markdown_table, plot_sequence, score
from segflow.synth import synth_videos
from storage import open_store
from storage.predictions import PredictionRepository
from storage.sequences import SequenceRepository

Reader = Callable[[str], np.ndarray]


@task(name="synthesize-videos", cache_policy=NO_CACHE)
def synth_task(out_dir: str, params: DemoParams) -> list[str]:
    """Write the demo's flash-memory videos (with label sidecars); return their paths."""
    return synth_videos(
        out_dir,
        count=params.videos,
        frames=params.frames,
        height=params.size,
        width=params.size,
        seed=params.seed,
        min_gap=params.min_gap,
        max_gap=params.max_gap,
        max_flash_frames=1,
    )


def _readers(store_url: str, model_tag: str) -> tuple[Reader, Reader]:
    """Readers of a sequence's stored predictions of ``model_tag``, and of its labels."""
    sequences = SequenceRepository(open_store(store_url))
    predictions = PredictionRepository(open_store(store_url))

    def read_labels(sequence_id: str) -> np.ndarray:
        labels = sequences.labels(sequence_id)
        if labels is None:
            raise ConfigError(f"Sequence {sequence_id!r} has no labels to score against.")
        return np.asarray(labels[: sequences.meta(sequence_id).length])

    return lambda i: predictions.read(model_tag, i), read_labels


@task(name="score-predictions", cache_policy=NO_CACHE)
def score_task(store_url: str, model_tag: str, ids: list[str]) -> Score:
    """Frame accuracy of the stored predictions of ``model_tag`` on ``ids``."""
    read_outputs, read_labels = _readers(store_url, model_tag)
    return score(ids, read_outputs, read_labels)


@task(name="plot-sequence", cache_policy=NO_CACHE)
def plot_task(
    store_url: str, model_tag: str, sequence_id: str, out: str, segment_length: int | None = None
) -> str:
    """Draw one sequence's predictions against its labels to a PNG; link it as an artifact."""
    read_outputs, read_labels = _readers(store_url, model_tag)
    labels = read_labels(sequence_id).reshape(-1)
    events = np.diff(labels, prepend=0) != 0
    curve = np.asarray(read_outputs(sequence_id)).reshape(len(labels), -1)[:, 0]
    path = plot_sequence(
        Path(out),
        sequence_id,
        labels,
        {"carried state": curve},
        events=events,
        segment_length=segment_length,
    )
    create_link_artifact(
        key="demo-plot", link=path.resolve().as_uri(), link_text=f"{sequence_id} predictions (PNG)"
    )
    return str(path)


@task(name="publish-demo-report", cache_policy=NO_CACHE)
def publish_demo_report(result: DemoResult) -> str:
    """Publish the demo's metrics table as a markdown artifact; return the markdown."""
    metrics = result.metrics
    rows = [
        ["carried state (segflow)", f"{metrics.carried_val:.1%}", f"{metrics.carried_pred:.1%}"],
        ["state reset every segment", f"{metrics.reset_val:.1%}", "-"],
        ["stateless, windows of one segment", f"{metrics.windowed_val:.1%}", "-"],
    ]
    where = result.paths.to_json()
    body = "\n\n".join(
        [
            "# segflow demo: memory across segments",
            "Label of each frame: has an odd number of flashes happened so far? Held-out videos.",
            markdown_table(
                ["model", "validation accuracy", "accuracy of stored predictions"], rows
            ),
            f"Gap: **{metrics.gap_points:.1f} points**.",
            markdown_table(["what", "where"], [[k, f"`{v}`"] for k, v in where.items()]),
        ]
    )
    create_markdown_artifact(key="demo-report", markdown=body)
    return body
