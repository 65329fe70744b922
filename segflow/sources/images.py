"""A folder of still images as one sequence, one image per frame, in natural name order.

Frames keep a channel axis: RGB images give ``(H, W, 3)``, RGBA ``(H, W, 4)``, grayscale
``(H, W, 1)``; the dtype is PIL's (``uint8``, or ``uint16``/``int32`` for 16/32-bit images).
Every image must have the same size and mode as the first: a mismatch raises
:class:`~segflow.errors.SourceError` naming the file and both shapes. :meth:`probe` checks
this for all images from their headers alone, without decoding them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import IO, Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from segflow.errors import SourceError, SourceNotFoundError
from segflow.fingerprint import Fingerprint, folder_fingerprint
from segflow.sources._common import (
    FingerprintedSource,
    check_block_args,
    check_resize,
    partition_of,
)
from segflow.sources.base import FrameBlock, SourceProbe
from segflow.sources.fs import filesystem, full_uri, local_path, open_binary

#: File extensions treated as images (lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders embedded numbers by value: ``img2`` before ``img10``.

    >>> sorted(["img10.png", "img2.png", "img1.png", "img.png"], key=natural_key)
    ['img.png', 'img1.png', 'img2.png', 'img10.png']
    """
    base = name.rstrip("/").rsplit("/", 1)[-1]
    stem, _, extension = base.rpartition(".") if "." in base[1:] else (base, "", "")
    # Numbers compare as (0, value, text) and text as (1, lower, text): the two never clash.
    # The stem is compared before the extension, so "a.png" < "a2.png" < "a10.png".
    key = tuple(
        (0, int(p), p) if p.isdigit() else (1, p.lower(), p) for p in _DIGITS.split(stem) if p
    )
    return (key, extension.lower(), base)


def is_image(name: str) -> bool:
    """Return whether ``name`` has an image extension (and is not hidden)."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Return the image files directly inside ``folder``, naturally sorted.

    Raises:
        SourceNotFoundError: If the folder does not exist.
    """
    path = local_path(folder)
    if path is not None:
        if not os.path.isdir(path):
            raise SourceNotFoundError(f"Image folder {folder!r} not found.")
        names = [os.path.join(path, n) for n in os.listdir(path) if is_image(n)]
    else:
        fs, inner = filesystem(folder, storage_options)
        if not fs.isdir(inner):
            raise SourceNotFoundError(f"Image folder {folder!r} not found.")
        names = [full_uri(fs, p, folder) for p in fs.ls(inner, detail=False) if is_image(p)]
    return sorted(names, key=natural_key)


#: Modes converted on decode: palette images to their colours, 1-bit images to 8-bit.
_CONVERTED_MODES = {"P": "RGB", "PA": "RGBA", "1": "L"}


def _layout(image: Image.Image) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Return the frame shape and dtype an image decodes to (from its header only)."""
    mode = _CONVERTED_MODES.get(image.mode, image.mode)
    bands = Image.getmodebands(mode)
    dtype = {"I;16": np.uint16, "I;16B": np.uint16, "I": np.int32, "F": np.float32}.get(
        mode, np.uint8
    )
    return (image.height, image.width, bands), np.dtype(dtype)


class ImageFolderSource(FingerprintedSource):
    """The images of one folder as a sequence.

    Args:
        folder: Local path or fsspec URL of the folder.
        resize: ``(height, width)`` to scale every image to, or None.
        grayscale: Convert to one channel (PIL mode ``L``), frames ``(H, W, 1)``.
        storage_options: fsspec options for remote folders.
        known: A previous :meth:`fingerprint_record`; reused when no file changed.
    """

    def __init__(
        self,
        folder: str,
        *,
        resize: tuple[int, int] | None = None,
        grayscale: bool = False,
        storage_options: dict[str, Any] | None = None,
        known: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(folder, storage_options=storage_options, known=known)
        self.resize = check_resize(resize)
        self.grayscale = bool(grayscale)
        self._files: list[str] | None = None

    @property
    def files(self) -> list[str]:
        """The image files in frame order.

        Raises:
            SourceError: If the folder holds no image.
        """
        if self._files is None:
            files = list_images(self.uri, self.storage_options)
            if not files:
                raise SourceError(
                    f"Image folder {self.uri!r} is zero-length: it holds no "
                    f"{'/'.join(IMAGE_EXTENSIONS)} file."
                )
            self._files = files
        return self._files

    def _open_image(self, uri: str, handle: IO[bytes]) -> Image.Image:
        try:
            return Image.open(handle)
        except (UnidentifiedImageError, OSError) as exc:
            raise SourceError(
                f"Image {uri!r} in folder {self.uri!r} cannot be read: {exc}"
            ) from exc

    def _header(self, uri: str) -> tuple[tuple[int, ...], np.dtype[Any], str]:
        with open_binary(uri, self.storage_options) as handle:
            image = self._open_image(uri, handle)
            return (*_layout(image), image.mode)

    def _check_same(
        self, uri: str, found: tuple[tuple[int, ...], str], expected: tuple[tuple[int, ...], str]
    ) -> None:
        if found != expected:
            raise SourceError(
                f"Image {uri!r} has shape {found[0]} and mode {found[1]!r}, but the first image "
                f"{self.files[0]!r} of folder {self.uri!r} has shape {expected[0]} and mode "
                f"{expected[1]!r}; every image of a sequence must match."
            )

    def _frame_shape(self, native: tuple[int, ...]) -> tuple[int, ...]:
        height, width = self.resize or native[:2]
        return height, width, 1 if self.grayscale else native[2]

    def _compute_fingerprint(self, known: Mapping[str, Any] | None) -> Fingerprint:
        return folder_fingerprint(self.files, storage_options=self.storage_options, known=known)

    def probe(self) -> SourceProbe:
        """List the images, read every header, and check they all match the first.

        Raises:
            SourceNotFoundError: If the folder does not exist.
            SourceError: If it holds no image, an image is unreadable, or shapes/modes differ.
        """
        shape, dtype, mode = self._header(self.files[0])
        for uri in self.files[1:]:
            other_shape, _, other_mode = self._header(uri)
            self._check_same(uri, (other_shape, other_mode), (shape, mode))
        return SourceProbe(
            uri=self.uri,
            frame_shape=self._frame_shape(shape),
            dtype=np.dtype(np.uint8) if self.grayscale else dtype,
            length=len(self.files),
            fingerprint=self.probe_fingerprint(),
            partition=partition_of(self.uri),
        )

    def _decode_into(
        self, uri: str, out: np.ndarray, expected: tuple[tuple[int, ...], str]
    ) -> None:
        with open_binary(uri, self.storage_options) as handle:
            image = self._open_image(uri, handle)
            self._check_same(uri, (_layout(image)[0], image.mode), expected)
            try:
                if self.grayscale:
                    image = image.convert("L")
                elif image.mode in _CONVERTED_MODES:
                    image = image.convert(_CONVERTED_MODES[image.mode])
                if self.resize is not None:
                    image = image.resize(
                        (self.resize[1], self.resize[0]), Image.Resampling.BILINEAR
                    )
                array = np.asarray(image)
            except OSError as exc:  # truncated image data surfaces on decode
                raise SourceError(
                    f"Image {uri!r} in folder {self.uri!r} is corrupt: {exc}"
                ) from exc
        out[...] = array.reshape(out.shape)

    def blocks(self, block_frames: int, start: int = 0) -> Iterator[FrameBlock]:
        """Yield blocks of decoded images (seeking is free: one file per frame).

        Raises:
            SourceError: If an image is corrupt or differs from the first.
        """
        check_block_args(block_frames, start)
        native, dtype, mode = self._header(self.files[0])
        expected = (native, mode)
        frame_shape = self._frame_shape(native)
        if self.grayscale:
            dtype = np.dtype(np.uint8)
        for begin in range(start, len(self.files), block_frames):
            names = self.files[begin : begin + block_frames]
            frames = np.empty((len(names), *frame_shape), dtype=dtype)
            for i, uri in enumerate(names):
                self._decode_into(uri, frames[i], expected)
            yield FrameBlock(begin, frames)
