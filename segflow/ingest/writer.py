"""Writing frame blocks into a sequence's arrays, several blocks encoded at once.

Zarr encodes and stores chunks on the calling thread's behalf; blosc and crc32c release the
GIL, so a few blocks written from a small thread pool keep both cores busy. Progress is
recorded only for the contiguous prefix of finished blocks, so a crash at any point resumes
from a frame whose chunks are all on disk.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import zarr

from segflow.sources.base import FrameBlock
from storage.sequences import iter_segments

#: Arrays of a sequence that grow along time together with the frames.
TIME_ARRAYS = ("frames", "labels", "timestamps")


class BlockWriter:
    """Writes :class:`FrameBlock` objects into a sequence group at ``offset + block.start``.

    Args:
        group: The sequence group (``frames`` and optionally ``labels``/``timestamps``).
        offset: Sequence frame where source frame 0 goes (the old length when appending).
        capacity_hint: Expected final sequence length, if known, to size arrays once.
        workers: Blocks written concurrently.
        on_progress: Called with the number of source frames durably written so far, in order.
        per_frame_labels: Whether ``labels`` grows with time (False: one per-sequence row).
    """

    def __init__(
        self,
        group: zarr.Group,
        *,
        offset: int,
        capacity_hint: int | None,
        workers: int,
        on_progress: Callable[[int], None],
        per_frame_labels: bool = True,
    ) -> None:
        # Skipping all-zero chunks costs a full comparison of every chunk (measured: a fifth
        # of the write time); real frames are rarely all zero.
        config = {"write_empty_chunks": True}
        self._arrays = {n: group[n].with_config(config) for n in TIME_ARRAYS if n in group}
        if not per_frame_labels:
            self._arrays.pop("labels", None)
        self._offset = offset
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="segflow-write")
        self._pending: deque[tuple[int, Future[None]]] = deque()
        self._workers = workers
        self._on_progress = on_progress
        self._capacity = self._arrays["frames"].shape[0]
        self._chunk = self._arrays["frames"].chunks[0]
        self._last_chunk = -1  # last time chunk touched by the most recent queued block
        if capacity_hint is not None and capacity_hint > self._capacity:
            self._resize(capacity_hint)

    def write(
        self, block: FrameBlock, labels: np.ndarray | None, timestamps: np.ndarray | None
    ) -> None:
        """Queue ``block`` (with its labels and timestamps rows) for writing."""
        stop = self._offset + block.stop
        if stop > self._capacity:
            self._drain()
            self._resize(max(stop, 2 * self._capacity))
        rows = {"frames": block.frames, "labels": labels, "timestamps": timestamps}
        start = self._offset + block.start
        if start // self._chunk == self._last_chunk:
            # Two blocks sharing a chunk (an append that starts mid-chunk) must not
            # read-modify-write it concurrently.
            self._drain()
        self._last_chunk = (stop - 1) // self._chunk
        future = self._pool.submit(self._store, start, rows)
        self._pending.append((block.stop, future))
        while len(self._pending) >= self._workers:
            self._finish_oldest()

    def close(self, final_length: int) -> None:
        """Wait for every queued block and trim the arrays to ``final_length`` frames."""
        try:
            self._drain()
            if self._capacity != final_length:
                self._resize(final_length)
        finally:
            self._pool.shutdown(wait=True)

    def abort(self) -> None:
        """Stop without recording further progress (the error is re-raised by the caller)."""
        for _, future in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True)
        self._pending.clear()

    def _store(self, start: int, rows: dict[str, np.ndarray | None]) -> None:
        for name, array in self._arrays.items():
            data = rows.get(name)
            if data is None:
                continue
            # One assignment per chunk: zarr hands a value of exactly one chunk's shape to the
            # codecs as it is, but copies any larger value into a fresh fill-valued buffer
            # chunk by chunk first (measured: 8% of ingest time).
            for begin, stop in iter_segments(start + len(data), self._chunk, start):
                array[begin:stop] = data[begin - start : stop - start]

    def _finish_oldest(self) -> None:
        source_stop, future = self._pending.popleft()
        future.result()
        self._on_progress(source_stop)

    def _drain(self) -> None:
        while self._pending:
            self._finish_oldest()

    def _resize(self, length: int) -> None:
        for array in self._arrays.values():
            array.resize((length, *array.shape[1:]))
        self._capacity = length
