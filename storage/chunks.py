"""Reading and writing whole time chunks of a segflow array without zarr's event loop.

zarr-python runs every chunk of ``array[a:b] = x`` or ``array[a:b]`` through one asyncio event
loop thread: it copies values into chunk buffers, schedules each codec, and awaits the store.
For the segflow layout (chunked along time only, codecs with synchronous implementations) that
round trip costs more CPU than the bytes themselves (measured: ingest of uncompressed frames
at a quarter of raw file-write speed, reads at half the CPU per byte). :class:`DirectChunks`
runs the array's *own* codec objects on the calling thread instead and moves the stored bytes
with :meth:`Store.read_bytes` / :meth:`Store.write_chunk`, so a thread pool encodes, checksums
and writes chunks in parallel. The bytes are exactly those zarr writes (the tests compare them
key by key), so stores stay readable by plain zarr.

The synchronous codec methods (``_encode_sync`` / ``_decode_sync``) are zarr-internal (zarr is
pinned to 3.1.x); if they go away, :meth:`DirectChunks.for_array` returns None and callers use
``array[...]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import google_crc32c
import numpy as np
from zarr.codecs import Crc32cCodec
from zarr.core.codec_pipeline import BatchedCodecPipeline

from storage.errors import KeyNotFoundError, StoreError

if TYPE_CHECKING:
    import zarr
    from zarr.core.buffer import NDArrayLike

    from storage.base import Store

__all__ = ["DirectChunks"]


class DirectChunks:
    """Encodes and decodes whole time chunks of one Zarr v3 array in the calling thread.

    Use :meth:`for_array`; it returns None for layouts this does not handle (chunked across
    frame dimensions, array-to-array codecs, codecs without synchronous implementations).

    Args:
        array: The array, opened from the store that :meth:`read` and :meth:`write` are given.
    """

    def __init__(self, array: zarr.Array) -> None:
        from zarr.core.buffer import default_buffer_prototype

        async_array = array.async_array
        pipeline = async_array.codec_pipeline
        if not isinstance(pipeline, BatchedCodecPipeline):
            raise TypeError(
                f"DirectChunks needs zarr's default codec pipeline, got {type(pipeline).__name__}"
                f" for {array.path!r}; DirectChunks.for_array returns None for such arrays."
            )
        self._metadata = async_array.metadata
        self._config = async_array.config
        # The codecs' synchronous methods are zarr-internal and not part of their typed
        # interface (for_array checks that they exist), hence Any.
        self._array_codec: Any = pipeline.array_bytes_codec
        bytes_codecs: tuple[Any, ...] = tuple(pipeline.bytes_bytes_codecs)
        # A trailing crc32c is appended as a separate 4-byte part on write: no copy of the chunk.
        self._trailing_crc = bool(bytes_codecs) and isinstance(bytes_codecs[-1], Crc32cCodec)
        self._encoders = bytes_codecs[:-1] if self._trailing_crc else bytes_codecs
        self._decoders = tuple(reversed(bytes_codecs))
        self._prototype = default_buffer_prototype()
        self._path = array.path
        self._fill = (array.fill_value, np.dtype(array.dtype))
        self._trailing = (0,) * (array.ndim - 1)
        self.chunk_length = int(array.chunks[0])
        self._chunk_shape = tuple(int(n) for n in array.chunks)
        self._chunk_size = int(np.prod(self._chunk_shape))
        self._raw_dtype = self._plain_layout_dtype()

    @classmethod
    def for_array(cls, array: zarr.Array) -> DirectChunks | None:
        """Return a :class:`DirectChunks` if ``array`` has a layout it handles, else None."""
        try:
            pipeline = array.async_array.codec_pipeline
            if not isinstance(pipeline, BatchedCodecPipeline):  # a custom one: the public path
                return None
            codecs = (pipeline.array_bytes_codec, *pipeline.bytes_bytes_codecs)
            usable = (
                array.async_array.metadata.zarr_format == 3
                and not tuple(pipeline.array_array_codecs)
                and all(hasattr(c, "_decode_sync") and hasattr(c, "_encode_sync") for c in codecs)
                and tuple(array.chunks[1:]) == tuple(array.shape[1:])
            )
        except AttributeError:  # another zarr version: stay on the public path
            return None
        return cls(array) if usable else None

    @property
    def uncompressed(self) -> bool:
        """Whether chunks hold the rows' bytes as they are (plus a checksum, if any)."""
        return self._raw_dtype is not None

    def key(self, index: int) -> str:
        """Return the store key of time chunk ``index``."""
        return f"{self._path}/{self._metadata.encode_chunk_key((index, *self._trailing))}"

    def read(self, store: Store, index: int) -> np.ndarray:
        """Return time chunk ``index`` at its full chunk length (fill value where unwritten).

        Raises:
            StoreError: If the stored chunk cannot be decoded (a corrupt chunk fails its
                checksum here).
        """
        key = self.key(index)
        try:
            raw = store.read_bytes(key)
        except KeyNotFoundError:
            # zarr does not write a chunk holding only the fill value (black frames, say).
            fill_value, dtype = self._fill
            return np.full(self._chunk_shape, fill_value, dtype=dtype)
        if self._raw_dtype is not None:
            return self._read_plain(store, key, raw)
        spec = self._spec(index)
        try:
            data = self._prototype.buffer.from_bytes(raw)
            for codec in self._decoders:
                data = codec._decode_sync(data, spec)  # noqa: SLF001  (see module docstring)
            return self._array_codec._decode_sync(data, spec).as_numpy_array()  # noqa: SLF001
        except Exception as exc:  # a corrupt chunk: name it instead of a bare codec error
            raise StoreError(
                f"Chunk {key!r} in store {store.url!r} could not be decoded: {exc}"
            ) from exc

    def write(self, store: Store, index: int, rows: np.ndarray, *, atomic: bool = False) -> None:
        """Encode ``rows`` (exactly one chunk of rows) and store them as time chunk ``index``.

        The array must already extend over the chunk (resize it first). Every chunk is
        written, including all-fill ones, as with ``write_empty_chunks=True``. The write is
        not atomic (see :meth:`Store.write_chunk`): write only chunks no reader uses yet, or
        pass ``atomic=True`` to replace a chunk whole (:meth:`Store.write_bytes`).

        Raises:
            ValueError: If ``rows`` is not exactly one chunk of the array's shape and dtype
                (in any byte order).
        """
        spec = self._spec(index)
        dtype = self._fill[1]
        if rows.shape != tuple(spec.shape) or not np.can_cast(rows.dtype, dtype, "equiv"):
            raise ValueError(
                f"Expected rows of shape {tuple(spec.shape)} and dtype {dtype} for "
                f"chunk {index} of {self._path!r}, got {rows.shape} {rows.dtype}."
            )
        rows = rows.astype(dtype, copy=False)  # another byte order: the array's
        # numpy's ndarray is an NDArrayLike, but numpy's stubs and zarr's protocol disagree.
        data = self._prototype.nd_buffer.from_ndarray_like(cast("NDArrayLike", rows))
        encoded = self._array_codec._encode_sync(data, spec)  # noqa: SLF001
        for codec in self._encoders:
            encoded = codec._encode_sync(encoded, spec)  # noqa: SLF001
        payload = encoded.as_numpy_array()
        parts: list[Any] = [payload]
        if self._trailing_crc:
            parts.append(np.array([google_crc32c.value(payload)], dtype="<u4").tobytes())
        if atomic:
            store.write_bytes(self.key(index), b"".join(parts))
        else:
            store.write_chunk(self.key(index), parts)

    def _plain_layout_dtype(self) -> np.dtype[Any] | None:
        """The stored dtype if chunks are just the rows' bytes (+ crc32c), else None."""
        from zarr.codecs import BytesCodec

        if self._encoders or not isinstance(self._array_codec, BytesCodec):
            return None
        dtype = self._fill[1]
        endian = self._array_codec.endian
        if dtype.itemsize > 1 and endian is not None:
            dtype = dtype.newbyteorder("<" if endian.value == "little" else ">")
        return dtype

    def _read_plain(self, store: Store, key: str, raw: bytes) -> np.ndarray:
        # The common uncompressed layout, decoded without zarr's buffer objects (measured:
        # half the CPU of a small chunk's read), to exactly what the codecs would return.
        assert self._raw_dtype is not None
        payload = np.frombuffer(raw, dtype=np.uint8)
        if self._trailing_crc:
            payload, stored = payload[:-4], payload[-4:].tobytes()
            computed = np.array([google_crc32c.value(payload)], dtype="<u4").tobytes()
            if computed != stored:
                raise StoreError(
                    f"Chunk {key!r} in store {store.url!r} could not be decoded: stored and "
                    f"computed checksum do not match (stored {stored!r}, computed {computed!r})."
                )
        expected = self._chunk_size * self._raw_dtype.itemsize
        if len(payload) != expected:
            raise StoreError(
                f"Chunk {key!r} in store {store.url!r} could not be decoded: expected "
                f"{expected} bytes of {self._raw_dtype}, got {len(payload)}."
            )
        rows = payload.view(self._raw_dtype).reshape(self._chunk_shape)
        return rows.astype(self._fill[1], copy=False)

    def _spec(self, index: int) -> Any:
        coords = (index, *self._trailing)
        return self._metadata.get_chunk_spec(coords, self._config, self._prototype)
