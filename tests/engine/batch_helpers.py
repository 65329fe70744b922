"""Test helpers: the batches a reader must yield, by brute-force slicing, and how to compare."""

from __future__ import annotations

import numpy as np

from segflow.engine.scheduler import schedule


def expected_batches(
    frames: list[np.ndarray],
    labels: list[np.ndarray] | None,
    lanes: int,
    segment_length: int,
    *,
    per_sequence: bool = False,
) -> list[dict[str, np.ndarray]]:
    """The batches by plain slicing of the whole arrays, one step at a time."""
    shape, dtype = frames[0].shape[1:], frames[0].dtype
    out = []
    for step in schedule([len(f) for f in frames], lanes, segment_length):
        batch = {
            "frames": np.zeros((lanes, segment_length, *shape), dtype),
            "mask": np.zeros((lanes, segment_length), bool),
            "reset": np.array([slot.reset for slot in step.slots]),
            "ends": np.zeros(lanes, bool),
        }
        if labels is not None:
            batch["labels"] = np.zeros((lanes, segment_length, *labels[0].shape[1:]), np.float32)
        for lane, slot in enumerate(step.slots):
            if slot.sequence is None:
                continue
            n, seq = slot.stop - slot.start, slot.sequence
            batch["frames"][lane, :n] = frames[seq][slot.start : slot.stop]
            batch["mask"][lane, :n] = True
            batch["ends"][lane] = slot.stop == len(frames[seq])
            if labels is not None:
                rows = labels[seq][0] if per_sequence else labels[seq][slot.start : slot.stop]
                batch["labels"][lane, :n] = rows
        out.append(batch)
    return out


def assert_batches_equal(
    got: list[dict[str, np.ndarray]], want: list[dict[str, np.ndarray]]
) -> None:
    assert len(got) == len(want)
    for index, (g, w) in enumerate(zip(got, want, strict=True)):
        assert sorted(g) == sorted(w), f"step {index}"
        for key in w:
            assert g[key].dtype == w[key].dtype, f"step {index} {key}"
            np.testing.assert_array_equal(g[key], w[key], err_msg=f"step {index} {key}")


def copied(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {key: value.copy() for key, value in batch.items()}


def random_frames(lengths: list[int], shape: tuple[int, ...], dtype: str) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    if dtype == "uint8":
        return [rng.integers(1, 256, (n, *shape), dtype=np.uint8) for n in lengths]
    return [rng.standard_normal((n, *shape)).astype(dtype) for n in lengths]
