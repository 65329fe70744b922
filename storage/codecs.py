"""Chunk codecs: the compression each array gets, and a crc32c codec off the event loop.

:func:`resolve_compression` and :func:`compressors_for` choose the bytes-to-bytes codecs of
segflow's arrays (the measurements behind the choice are in ``compressors_for``'s docstring).

zarr-python runs every codec on its single event-loop thread unless the codec hands work to
a thread itself (blosc does, crc32c does not). Writing uncompressed chunks was then capped at
one core by the checksum and its copy. :class:`ThreadedCrc32cCodec` writes and reads the same
bytes (the ``crc32c`` codec of the Zarr v3 spec) but runs in worker threads; ``google_crc32c``
releases the GIL, so chunks are checksummed in parallel. It is registered under the spec's
name and selected through zarr's codec configuration, so stores stay readable by any Zarr.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

import google_crc32c
import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec
from zarr.registry import register_codec

from storage.errors import ConfigError

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer

Compression = Literal["auto", "lz4", "zstd", "none"]

#: ``auto`` keeps blosc lz4 for integer frames only if a sample of them shrinks at least this
#: much. Measured (:func:`compressors_for`), uint8 frames fall in two groups far apart: noisy
#: camera video and photos, where lz4 saves 11-30% of the bytes (1.13-1.41x, any lz4
#: setting) at a CPU cost above H.264 decoding's, and smooth or synthetic frames, where it
#: saves 65-88% (2.8-8x) at half that cost. The bound sits in the gap, so that the frames of
#: one camera do not flip between the two with the scene; below it, frames are stored
#: uncompressed (``compression="lz4"`` still forces lz4).
MIN_LZ4_RATIO = 1.5
#: Bytes of the first frames that ``auto`` compresses to measure the ratio (~6 ms of lz4).
SAMPLE_BYTES = 4 * 2**20
#: Blosc's lz4 level: it changes little but the block size (see :func:`compressors_for`).
_LZ4_LEVEL = 5


def resolve_compression(
    compression: Compression, dtype: Any, sample: np.ndarray | None = None
) -> Compression:
    """Pick the compression for ``auto`` by dtype and, given a ``sample``, by its lz4 ratio.

    Float frames (feature vectors) compress about 1.16x while their decode is what a
    streaming step waits on: they are stored uncompressed. Integer frames (video, images)
    get blosc lz4, unless ``sample`` (the first frames) compresses less than
    :data:`MIN_LZ4_RATIO` with it; without a sample they get lz4. The choice is recorded in
    each array's metadata, so it never has to be made again for that sequence.

    >>> resolve_compression("auto", "uint8"), resolve_compression("auto", "float32")
    ('lz4', 'none')
    >>> smooth = np.repeat(np.arange(64, dtype=np.uint8), 1000)
    >>> noise = np.random.default_rng(0).integers(0, 256, 64_000, dtype=np.uint8)
    >>> resolve_compression("auto", "uint8", smooth), resolve_compression("auto", "uint8", noise)
    ('lz4', 'none')
    >>> resolve_compression("lz4", "uint8", noise)  # asked for: kept
    'lz4'
    """
    if compression != "auto":
        return compression
    if np.dtype(dtype).kind in "fc":
        return "none"
    if sample is None or sample.size == 0:
        return "lz4"
    return "lz4" if lz4_ratio(sample) >= MIN_LZ4_RATIO else "none"


def lz4_ratio(sample: np.ndarray) -> float:
    """Return how much the first :data:`SAMPLE_BYTES` of ``sample`` shrink with ``lz4``.

    The codec is the one :func:`compressors_for` gives ``sample``'s dtype; blosc compresses
    its blocks independently, so a few MB predict a whole chunk's ratio closely.
    """
    from numcodecs import Blosc

    flat = np.ascontiguousarray(sample).reshape(-1)
    head = flat[: max(1, SAMPLE_BYTES // flat.itemsize)]
    codec = Blosc(
        cname="lz4",
        clevel=_LZ4_LEVEL,
        shuffle=Blosc.NOSHUFFLE if head.itemsize == 1 else Blosc.BITSHUFFLE,
        typesize=head.itemsize,
    )
    return head.nbytes / len(codec.encode(head))


def compressors_for(compression: Compression, dtype: Any = None) -> list[Any]:
    """Return the bytes-to-bytes codecs for ``compression``, always ending with a crc32c check.

    ``lz4`` is blosc lz4 (level 5), without shuffle for 1-byte ``dtype`` (video, images) and
    with bitshuffle for wider or unknown ones. Stores written before this choice (bitshuffle
    for every dtype) read the same: zarr takes the codecs from each array's metadata. The
    crc32c codec detects a corrupted chunk on read.

    Measured on this project's 2-core VM (``python -m benchmarks.video_ingest --codecs``,
    load average 2.4: speeds move by ~20% between runs, ratios do not): ratio, and CPU MB/s
    of uncompressed bytes on one thread, over 16-frame chunks of uint8 RGB frames::

        codec                     noisy clip    smooth video   image folder   JPEG photos
                                  ratio   enc   ratio   enc    ratio   enc    ratio   enc
        lz4 bitshuffle (before)    1.30   487    4.22   740     2.84   802     1.27   999
        lz4 no shuffle (now)       1.18   502    6.85  1402     5.85  1264     1.13   972
        lz4 byte shuffle           1.18   556    6.85  1315     5.85  1261     1.13  1060
        lz4 level 1                1.18   561    6.54  1422     4.77  1270     1.13  1386
        lz4 level 9                1.41   350    7.06  1439     6.44  1276     1.19   778
        blosclz                    1.04   962    8.09   922     5.92   695     1.08  1061
        blosc zstd 1               1.60   210   13.50   666     9.51   587     1.30   276
        zstd 1                     1.54   332   15.88   979    11.80   815     1.29   455
        zstd 3 (``zstd``)          2.40   173   16.02   905    11.66   704     1.41   196

        decode MB/s: lz4 no shuffle 1057 / 1304 / 3584 / 6222, bitshuffle 635 / 869 / 1492 /
        1719, zstd 1 714 / 1017 / 1693 / 1397

    The noisy clip is the ``video_ingest`` benchmark's (720p H.264 with sensor noise), the
    smooth video and the image folder (PNG, 480x640) are :mod:`segflow.synth`'s, the photos
    are JPEG crops of a photograph. Bitshuffle costs about as much as lz4 itself on 1-byte
    values and, on smooth frames, compresses worse (lz4 matches the bit planes it makes
    poorly); byte shuffle is a no-op on them. Lz4's level changes little but its block size.
    zstd compresses smooth frames twice as well as lz4 at two thirds of its speed, but noisy
    ones at a third (``zstd``, level 3, stays the choice for archives). On noisy frames no
    fast codec saves more than about a fifth of the bytes (zstd 3 more, at a third of the
    speed), hence :data:`MIN_LZ4_RATIO`.
    Blosc runs single-threaded per chunk (zarr sets ``numcodecs.blosc.use_threads = False``)
    and releases the GIL: the ingest writer compresses ``write_workers`` chunks at once.
    """
    if compression == "lz4":
        itemsize = None if dtype is None else np.dtype(dtype).itemsize
        shuffle: Literal["noshuffle", "bitshuffle"] = "noshuffle" if itemsize == 1 else "bitshuffle"
        first: list[Any] = [BloscCodec(cname="lz4", clevel=_LZ4_LEVEL, shuffle=shuffle)]
    elif compression == "zstd":
        first = [ZstdCodec(level=3)]
    elif compression == "none":
        first = []
    else:
        raise ConfigError(f"Invalid compression {compression!r}: expected 'lz4', 'zstd' or 'none'.")
    return [*first, Crc32cCodec()]


class ThreadedCrc32cCodec(Crc32cCodec):
    """The ``crc32c`` codec, computed in a worker thread with a single copy."""

    def _encode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer | None:
        data = chunk_bytes.as_numpy_array()
        out = np.empty(data.nbytes + 4, dtype=np.uint8)
        out[:-4] = data.reshape(-1).view(np.uint8)
        out[-4:] = np.array([google_crc32c.value(out[:-4])], dtype="<u4").view(np.uint8)
        return chunk_spec.prototype.buffer.from_array_like(out)

    async def _encode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_bytes, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)


def install() -> None:
    """Make zarr use :class:`ThreadedCrc32cCodec` for the ``crc32c`` codec in this process."""
    register_codec("crc32c", ThreadedCrc32cCodec)
    zarr.config.set({"codecs.crc32c": f"{__name__}.ThreadedCrc32cCodec"})


install()
