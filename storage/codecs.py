"""A crc32c codec for Zarr that checksums off the event loop.

zarr-python runs every codec on its single event-loop thread unless the codec hands work to
a thread itself (blosc does, crc32c does not). Writing uncompressed chunks was then capped at
one core by the checksum and its copy. This implementation writes and reads the same bytes
(the ``crc32c`` codec of the Zarr v3 spec) but runs in worker threads; ``google_crc32c``
releases the GIL, so chunks are checksummed in parallel. It is registered under the spec's
name and selected through zarr's codec configuration, so stores stay readable by any Zarr.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import google_crc32c
import numpy as np
import zarr
from zarr.codecs import Crc32cCodec
from zarr.registry import register_codec

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer


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
