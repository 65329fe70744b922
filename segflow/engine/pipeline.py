"""The input pipeline: the batches of a lane schedule, read from a sequence store ahead of use.

:class:`StepReader` turns each :class:`~segflow.engine.scheduler.Step` into one batch of NumPy
arrays (no TensorFlow); :meth:`StepReader.iter_batches` yields the batches in schedule order;
:func:`make_dataset` / :func:`reader_dataset` serve them as a ``tf.data.Dataset`` with fixed
shapes, the one input pipeline: :meth:`StreamingEngine.stream
<segflow.engine.engine.StreamingEngine.stream>` (training, evaluation, prediction) pulls its
elements inside the step function, and a user's own Keras code can iterate it. TensorFlow is
imported only by the dataset functions.

This module is the pipeline's public face (import from here); its parts live in modules cut
by concept:

- :mod:`segflow.engine.chunks`: chunk sources (:class:`ChunkSource`, :class:`ArrayChunks`,
  :class:`ZarrChunks`, :class:`OffsetChunks`) and :class:`SequenceChunks`;
- :mod:`segflow.engine.readplan`: the pure plan (batch layout, chunk keys of each step);
- :mod:`segflow.engine.stepindex`: each group of steps as rows to read and gather indices;
- :mod:`segflow.engine.buffers`: recycled batch arrays and the chunk prefetcher;
- :mod:`segflow.engine.reader`: :class:`StepReader`, which reads and assembles the batches;
- :mod:`segflow.engine.dataset`: :func:`make_dataset` and :func:`reader_dataset` (TensorFlow).

A batch is a dict of arrays, ``B = lanes`` and ``L = segment_length``:

- ``frames`` (B, L, *frame_shape) in the store's dtype, zeros where padded;
- ``mask`` (B, L) bool, True on real frames;
- ``reset`` (B,) bool, the slots' ``reset`` (True at a sequence's first step and on idle lanes);
- ``ends`` (B,) bool, True where the slot carries its sequence's last frame (an addition to the
  engine contract: it tells a consumer when a sequence's outputs are complete);
- ``labels`` (B, L, *label_shape) float32, only ``with_labels``; zeros where padded. A
  per-sequence label (``label_kind == "per_sequence"``, stored as one row) is repeated on every
  real frame of the sequence, so per-frame and per-sequence labels feed the same loss.

What keeps the model fed (``python -m benchmarks.pipeline``, 2 shared cores, warm cache:
64x64x3 video 0.9-1.4 GB/s, 4-5x a naive per-slot ``array[start:stop]`` loop; 256-dim float32
features ~0.4 GB/s, ~10x naive):

- Whole chunks are read, each once: a chunk stays cached while a planned step still needs it,
  so a chunk longer than ``segment_length``, or a segment straddling two chunks, costs one
  read and one decode per chunk.
- A chunk of the segflow layout (chunked along time only; codecs with synchronous decoders:
  bytes, blosc, zstd, crc32c) is fetched with :meth:`Store.read_bytes` and decoded by the
  array's own codec objects in the reading thread (:class:`storage.chunks.DirectChunks`; an
  uncompressed chunk is checksummed and viewed as rows without zarr's buffer objects). That
  skips zarr's event-loop round trip per chunk: about half the CPU per byte of
  ``array[start:stop]`` and 2-3x its speed. Other arrays (sharded, chunked across frames,
  other codecs) go through ``array[...]``.
- Compressed chunks, and any chunk of a remote store, are read in a thread pool (file reads
  and blosc release the GIL), ``readahead`` steps ahead of the batch being assembled, so
  memory stays bounded by a few steps of chunks. Uncompressed chunks on a local disk are read
  inline, when a batch is assembled: a read there costs less than the futures and the GIL
  hand-offs of a pool (measured 5-10% of a small model's step).
- The dataset builds batches in the graph: per group of a few consecutive steps, Python
  copies the rows the steps use into one array per field (one concatenation) and computes
  every step's gather indices with a few vectorised NumPy calls
  (:mod:`segflow.engine.stepindex`); ``tf.gather`` then places rows, padding and NaN targets
  in a ``tf.data`` thread. :meth:`StepReader.iter_batches` (NumPy batches, no TensorFlow)
  assembles each batch in one tight loop over lanes, one slice copy per lane and array.
- Rows and batch arrays are 64-byte aligned, so TensorFlow takes them without a copy
  (``numpy_function`` results, or DLPack, see :func:`segflow.engine.engine.as_tensor`), and
  recycled only when nothing references them any more (see
  :class:`~segflow.engine.buffers.BatchBuffers`).
"""

from __future__ import annotations

from segflow.engine.chunks import (
    ArrayChunks,
    ChunkSource,
    OffsetChunks,
    SequenceChunks,
    ZarrChunks,
)
from segflow.engine.dataset import make_dataset, reader_dataset
from segflow.engine.reader import StepReader

__all__ = [
    "ArrayChunks",
    "ChunkSource",
    "OffsetChunks",
    "SequenceChunks",
    "StepReader",
    "ZarrChunks",
    "make_dataset",
    "reader_dataset",
]
