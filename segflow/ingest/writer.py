"""Writing frame blocks into a sequence's arrays, several blocks encoded at once.

Whole chunks are encoded and stored by :class:`~storage.chunks.DirectChunks` in the writing
thread (no zarr event loop, no copy of uncompressed frames), and so is the sequence's last
chunk, padded with the fill value as zarr pads it; a chunk a block starts in the middle of
(the first of an append) goes through zarr, which merges it with what is stored. Blosc, crc32c and
file writes release the GIL, so blocks written from a small thread pool overlap with the
source producing the next one (decoding a video, say): up to ``workers`` blocks are in flight.
Progress is recorded only for the contiguous prefix of finished blocks, so a crash at any
point resumes from a frame whose chunks are all on disk.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import zarr
from zarr.core.array_spec import ArrayConfigParams

from segflow.sources.base import FrameBlock
from storage.base import Store
from storage.chunks import DirectChunks
from storage.sequences import array_member, iter_segments

#: Arrays of a sequence that grow along time together with the frames.
TIME_ARRAYS = ("frames", "labels", "timestamps")


class BlockWriter:
    """Writes :class:`FrameBlock` objects into a sequence group at ``offset + block.start``.

    Args:
        store: The store holding ``group``.
        group: The sequence group (``frames`` and optionally ``labels``/``timestamps``).
        offset: Sequence frame where source frame 0 goes (the old length when appending).
        capacity_hint: Expected final sequence length, if known, to size arrays once.
        workers: Chunks encoded and written concurrently, and blocks kept in flight while
            the caller produces the next one (:meth:`write` returns once fewer are pending).
        on_progress: Called with the number of source frames durably written so far, in order.
        per_frame_labels: Whether ``labels`` grows with time (False: one per-sequence row).
    """

    def __init__(
        self,
        store: Store,
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
        config: ArrayConfigParams = {"write_empty_chunks": True}
        self._arrays = {
            n: array_member(group, n).with_config(config) for n in TIME_ARRAYS if n in group
        }
        if not per_frame_labels:
            self._arrays.pop("labels", None)
        self._store = store
        self._direct = {n: DirectChunks.for_array(a) for n, a in self._arrays.items()}
        self._offset = offset
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="segflow-write")
        self._pending: deque[tuple[int, list[Future[None]]]] = deque()
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
        futures = [
            self._pool.submit(self._write_chunk, name, begin, part)
            for name, begin, part in self._chunk_parts(start, rows)
        ]
        self._pending.append((block.stop, futures))
        # Up to `workers` blocks in flight while the caller produces the next: a block is
        # often a single chunk (a video's 16 frames of 720p are 44 MB), and one chunk at a
        # time left the encoding on one core while decoding waited for it.
        while len(self._pending) > self._workers:
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
        for _, futures in self._pending:
            for future in futures:
                future.cancel()
        self._pool.shutdown(wait=True)
        self._pending.clear()

    def _chunk_parts(
        self, start: int, rows: dict[str, np.ndarray | None]
    ) -> Iterator[tuple[str, int, np.ndarray]]:
        """Split each array's rows at its chunk boundaries: ``(array name, first row, rows)``."""
        for name, array in self._arrays.items():
            data = rows.get(name)
            if data is None:
                continue
            for begin, stop in iter_segments(start + len(data), int(array.chunks[0]), start):
                yield name, begin, data[begin - start : stop - start]

    def _write_chunk(self, name: str, begin: int, part: np.ndarray) -> None:
        direct, chunk = self._direct[name], int(self._arrays[name].chunks[0])
        if direct is not None and begin % chunk == 0:
            if len(part) < chunk:  # the sequence's last chunk, so far
                part = self._padded(name, part)
            direct.write(self._store, begin // chunk, part)
        else:
            # One assignment per chunk: zarr copies a larger value into fill-valued chunk
            # buffers first (measured: 8% of ingest time).
            self._arrays[name][begin : begin + len(part)] = part

    def _padded(self, name: str, part: np.ndarray) -> np.ndarray:
        """``part`` (rows from a chunk's start) as a whole chunk, the fill value after it.

        These are the bytes zarr writes for a chunk at the array's edge, without its event
        loop, its read of the missing chunk and its copies (measured: 0.17 s, an eighth of a
        720p clip's ingest, spent after the last frame was decoded). Rows a later block adds
        to this chunk (an append) go through zarr, which reads it back.
        """
        array = self._arrays[name]
        shape = (int(array.chunks[0]), *part.shape[1:])
        # np.zeros maps untouched pages that read as zeros: only the rows copied are written.
        whole = np.zeros(shape, part.dtype)
        if array.fill_value:
            whole[len(part) :] = array.fill_value
        whole[: len(part)] = part
        return whole

    def _finish_oldest(self) -> None:
        source_stop, futures = self._pending.popleft()
        for future in futures:
            future.result()
        self._on_progress(source_stop)

    def _drain(self) -> None:
        while self._pending:
            self._finish_oldest()

    def _resize(self, length: int) -> None:
        for array in self._arrays.values():
            array.resize((length, *array.shape[1:]))
        self._capacity = length
