"""Prefect tasks of the demo: synthesize inputs, score predictions, draw and publish."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from segflow.config import DemoParams
from segflow.report import markdown_table, plot_sequence, score
from segflow.synth import synth_videos
from storage import open_store
from storage.predictions import PredictionRepository
from storage.sequences import SequenceRepository


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


def _readers(store_url: str, model_tag: str) -> tuple[Any, Any]:
    sequences = SequenceRepository(open_store(store_url))
    predictions = PredictionRepository(open_store(store_url))
    return (
        lambda i: predictions.read(model_tag, i),
        lambda i: sequences.labels(i)[: sequences.meta(i).length],
    )


@task(name="score-predictions", cache_policy=NO_CACHE)
def score_task(store_url: str, model_tag: str, ids: list[str]) -> dict[str, float]:
    """Frame accuracy of the stored predictions of ``model_tag`` on ``ids``."""
    read_outputs, read_labels = _readers(store_url, model_tag)
    result = score(ids, read_outputs, read_labels)
    return {"accuracy": result.accuracy, "frames": result.frames}


@task(name="plot-sequence", cache_policy=NO_CACHE)
def plot_task(
    store_url: str, model_tag: str, sequence_id: str, out: str, segment_length: int | None = None
) -> str:
    """Draw one sequence's predictions against its labels to a PNG; link it as an artifact."""
    read_outputs, read_labels = _readers(store_url, model_tag)
    labels = np.asarray(read_labels(sequence_id)).reshape(-1)
    events = np.diff(labels, prepend=0) != 0
    curve = np.asarray(read_outputs(sequence_id)).reshape(len(labels), -1)[:, 0]
    path = plot_sequence(
        Path(out), sequence_id, labels, {"carried state": curve}, events=events,
        segment_length=segment_length,
    )
    create_link_artifact(
        key="demo-plot", link=path.resolve().as_uri(), link_text=f"{sequence_id} predictions (PNG)"
    )
    return str(path)


@task(name="publish-demo-report", cache_policy=NO_CACHE)
def publish_demo_report(metrics: dict[str, Any], where: dict[str, str]) -> str:
    """Publish the demo's metrics table as a markdown artifact; return the markdown."""
    rows = [
        ["carried state (segflow)", f"{metrics['carried_val']:.1%}", f"{metrics['carried_pred']:.1%}"],
        ["state reset every segment", f"{metrics['reset_val']:.1%}", "-"],
    ]
    body = "\n\n".join(
        [
            "# segflow demo: memory across segments",
            "Label of each frame: has an odd number of flashes happened so far? Held-out videos.",
            markdown_table(["model", "validation accuracy", "accuracy of stored predictions"], rows),
            f"Gap: **{metrics['gap_points']:.1f} points**.",
            markdown_table(["what", "where"], [[k, f"`{v}`"] for k, v in where.items()]),
        ]
    )
    create_markdown_artifact(key="demo-report", markdown=body)
    return body
