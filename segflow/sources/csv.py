"""CSV (or TSV) files as multivariate time series: one row per frame.

Frames are ``float32`` vectors of shape ``(F,)`` (one value per feature column). The file is
read as a stream, ``block_frames`` rows at a time, so memory stays bounded by a block.

Columns:

- ``timestamp_column`` (default: a column named ``timestamp`` or ``time`` if present) holds
  ISO-8601 times (``2026-01-31T00:00:00.100``) or numbers of seconds. Blocks carry timestamps
  in seconds from the first row; :meth:`CsvSource.probe` reports the first time (ISO only)
  and the median interval over the first rows.
- ``label_column`` (default: a column named ``label`` if present) gives per-frame labels,
  always ``float32`` of shape ``()`` so that one dtype fits every file (integers up to 2**24
  are exact). Cells are numbers, ``yes``/``no`` or ``true``/``false`` (1/0), blanks
  (unlabelled: NaN) or class names (``rain``, ``sun``: class indices, the names sorted or in
  the order of ``class_names``; see :mod:`segflow.sources.classnames`).
- ``feature_columns`` (default: every other column whose first value is numeric or blank).

A blank feature cell is a missing value, read as NaN, like ``nan`` itself: real recordings
have gaps, and the model feeds a missing value as 0 after standardizing, that is as the
feature's mean (:mod:`segflow.engine.standardize`). A missing column, a ragged row or a
non-numeric value raises :class:`~segflow.errors.SourceError` naming the file, the line and
the column. ``inf`` parses as a number; the ingest loop rejects it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

import numpy as np

from segflow.errors import SourceError
from segflow.fingerprint import Fingerprint, url_fingerprint
from segflow.sources._common import FingerprintedSource, check_block_args, partition_of
from segflow.sources.base import FrameBlock, SourceProbe
from segflow.sources.classnames import UnknownLabel, is_text_label, label_values, sorted_names
from segflow.sources.fs import open_binary

#: File extensions read as delimited text.
CSV_EXTENSIONS = (".csv", ".tsv")

_TIMESTAMP_NAMES = ("timestamp", "time")
_LABEL_NAMES = ("label",)
_PROBE_ROWS = 1000


def _is_blank(text: str) -> bool:
    return not text.strip()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class _Columns:
    """Resolved column indices and the timestamp kind."""

    header: tuple[str, ...]
    features: tuple[int, ...]
    timestamp: int | None
    label: int | None
    iso_time: bool

    def names(self, indices: Sequence[int]) -> list[str]:
        return [self.header[i] for i in indices]


@dataclass
class _Rows:
    """A block of raw rows with the line number each ended on."""

    rows: list[list[str]]
    lines: list[int]


class CsvSource(FingerprintedSource):
    """A CSV/TSV file as a multivariate series.

    Args:
        path: Local path or fsspec URL.
        feature_columns: Names of the feature columns, in frame order; default every
            numeric column other than the timestamp and label columns.
        timestamp_column: Name of the time column; default ``timestamp``/``time`` if present.
        label_column: Name of the label column; default ``label`` if present.
        class_names: The classes of a text label column, in index order; default the names
            the column holds, sorted.
        delimiter: Field separator; default tab for ``.tsv``, else comma.
        storage_options: fsspec options for remote files.
        known: A previous :meth:`fingerprint_record`, to skip re-hashing an unchanged file.
    """

    def __init__(
        self,
        path: str,
        *,
        feature_columns: Sequence[str] | None = None,
        timestamp_column: str | None = None,
        label_column: str | None = None,
        class_names: Sequence[str] | None = None,
        delimiter: str | None = None,
        storage_options: dict[str, Any] | None = None,
        known: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(path, storage_options=storage_options, known=known)
        self.feature_columns = list(feature_columns) if feature_columns is not None else None
        self.timestamp_column = timestamp_column
        self.label_column = label_column
        self.class_names = tuple(class_names) if class_names is not None else None
        self._classes: dict[str, int] | None = None  # of text labels, by _resolve_classes
        self._classes_resolved = False
        self.delimiter = delimiter or ("\t" if self.uri.lower().endswith(".tsv") else ",")

    # -- reading rows ----------------------------------------------------------------------

    def _rows(self, handle: Any) -> tuple[list[str], Iterator[tuple[list[str], int]]]:
        """Return the header and an iterator of ``(row, line number)``, blank lines skipped."""
        text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, delimiter=self.delimiter)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SourceError(f"CSV source {self.uri!r} cannot be parsed: {exc}") from exc
        if not header:
            raise SourceError(f"CSV source {self.uri!r} is zero-length: it is empty (no header).")
        return [h.strip() for h in header], self._numbered(reader)

    def _numbered(self, reader: Any) -> Iterator[tuple[list[str], int]]:
        try:
            for row in reader:
                if row:
                    yield row, reader.line_num
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SourceError(
                f"CSV source {self.uri!r} cannot be parsed near line {reader.line_num}: {exc}"
            ) from exc

    @staticmethod
    def _take(rows: Iterator[tuple[list[str], int]], count: int) -> _Rows:
        taken = _Rows([], [])
        for row, line in islice(rows, count):
            taken.rows.append(row)
            taken.lines.append(line)
        return taken

    # -- columns ---------------------------------------------------------------------------

    def _find(self, header: list[str], name: str, what: str) -> int:
        if name not in header:
            raise SourceError(
                f"CSV source {self.uri!r} has no {what} column {name!r}; available columns: "
                f"{header}."
            )
        return header.index(name)

    def _default(self, header: list[str], names: tuple[str, ...]) -> int | None:
        lowered = [h.lower() for h in header]
        return next((lowered.index(n) for n in names if n in lowered), None)

    def _resolve(self, header: list[str], first: list[str], line: int) -> _Columns:
        duplicates = sorted({h for h in header if header.count(h) > 1})
        if duplicates:
            raise SourceError(f"CSV source {self.uri!r} repeats column names {duplicates}.")
        self._check_width(header, first, line)
        timestamp = (
            self._find(header, self.timestamp_column, "timestamp")
            if self.timestamp_column is not None
            else self._default(header, _TIMESTAMP_NAMES)
        )
        label = (
            self._find(header, self.label_column, "label")
            if self.label_column is not None
            else self._default(header, _LABEL_NAMES)
        )
        if self.feature_columns is not None:
            features = [self._find(header, n, "feature") for n in self.feature_columns]
        else:
            skip = {timestamp, label}
            features = [
                i for i, v in enumerate(first) if i not in skip and (_is_number(v) or _is_blank(v))
            ]
        if not features:
            raise SourceError(
                f"CSV source {self.uri!r} has no numeric feature column; columns: {header}."
            )
        iso = timestamp is not None and not _is_number(first[timestamp])
        return _Columns(tuple(header), tuple(features), timestamp, label, iso)

    def _check_width(self, header: Sequence[str], row: list[str], line: int) -> None:
        if len(row) != len(header):
            raise SourceError(
                f"CSV source {self.uri!r}, line {line}: {len(row)} fields, expected "
                f"{len(header)} like the header."
            )

    # -- conversion ------------------------------------------------------------------------

    def _numbers(self, block: _Rows, columns: _Columns, indices: Sequence[int]) -> np.ndarray:
        """Convert the given columns of a block to float32 ``(rows, len(indices))``; blank
        cells (missing values) become NaN."""
        try:
            return np.array([[r[i] for i in indices] for r in block.rows], dtype=np.float32)
        except (ValueError, IndexError):
            pass
        try:  # a block with gaps: blanks as NaN
            cells = [[r[i] if r[i].strip() else "nan" for i in indices] for r in block.rows]
            return np.array(cells, dtype=np.float32)
        except (ValueError, IndexError):
            pass
        # Slow path, only on failure: find and name the first bad cell.
        for row, line in zip(block.rows, block.lines, strict=True):
            self._check_width(columns.header, row, line)
            for i in indices:
                if not (_is_number(row[i]) or _is_blank(row[i])):
                    raise SourceError(
                        f"CSV source {self.uri!r}, line {line}, column {columns.header[i]!r}: "
                        f"non-numeric value {row[i]!r}."
                    ) from None
        raise SourceError(f"CSV source {self.uri!r}: values cannot be converted to float32.")

    def _labels(self, block: _Rows, columns: _Columns) -> np.ndarray:
        """The label column of a block: numbers, binary words, blanks (NaN) or class indices."""
        assert columns.label is not None
        cells = [row[columns.label] for row in block.rows]
        try:
            return label_values(cells, self._classes)
        except UnknownLabel as exc:
            raise SourceError(
                f"CSV source {self.uri!r}, line {block.lines[exc.row]}, column "
                f"{columns.header[columns.label]!r}: {exc}."
            ) from None

    def _resolve_classes(self, head: _Rows, columns: _Columns) -> tuple[str, ...]:
        """Fix the class of each text label before any block is read; return the names.

        Given ``class_names``, those. Else, when the first rows hold a class name or no label
        at all, the names of the whole column, sorted (one pass over the file's labels);
        numbers in the first rows mean a numeric column (text later is an error).
        """
        if columns.label is None:
            return ()
        names = self.class_names
        if names is None:
            cells = [row[columns.label] for row in head.rows]
            text = any(is_text_label(cell) for cell in cells)
            names = (
                self._column_names(columns.label) if text or not any(map(str.strip, cells)) else ()
            )
        self._classes = {name: index for index, name in enumerate(names)} or None
        self._classes_resolved = True
        return names

    def _column_names(self, label: int) -> tuple[str, ...]:
        with open_binary(self.uri, self.storage_options) as handle:
            _, rows = self._rows(handle)
            return sorted_names(row[label] for row, _ in rows if len(row) > label)

    def _times(self, block: _Rows, columns: _Columns) -> list[Any]:
        """Parse the timestamp column to datetimes (ISO) or floats (seconds)."""
        assert columns.timestamp is not None
        column, parse = columns.timestamp, datetime.fromisoformat if columns.iso_time else float
        values = []
        for row, line in zip(block.rows, block.lines, strict=True):
            try:
                values.append(parse(row[column].strip()))
            except (ValueError, IndexError):
                self._check_width(columns.header, row, line)
                raise SourceError(
                    f"CSV source {self.uri!r}, line {line}, column {columns.header[column]!r}: "
                    f"invalid timestamp {row[column]!r}: expected "
                    f"{'ISO-8601' if columns.iso_time else 'seconds as a number'} like the "
                    f"first row."
                ) from None
        return values

    def _seconds(self, times: list[Any], origin: Any, block: _Rows) -> np.ndarray:
        if not times:
            return np.empty(0, dtype=np.float64)
        if isinstance(origin, float):
            return np.asarray(times, dtype=np.float64) - origin
        try:
            return np.array([(t - origin).total_seconds() for t in times], dtype=np.float64)
        except TypeError as exc:  # naive mixed with timezone-aware
            raise SourceError(
                f"CSV source {self.uri!r} near line {block.lines[0]}: timestamps mix "
                f"timezone-aware and naive values: {exc}"
            ) from exc

    def _origin(self, first: _Rows, columns: _Columns) -> Any:
        """Return the first row's time (datetime or float), or None without a time column."""
        return self._times(first, columns)[0] if columns.timestamp is not None else None

    def _frame_block(self, start: int, block: _Rows, columns: _Columns, origin: Any) -> FrameBlock:
        width = len(columns.header)
        for row, line in zip(block.rows, block.lines, strict=True):
            if len(row) != width:
                self._check_width(columns.header, row, line)
        frames = self._numbers(block, columns, columns.features)
        labels = None
        if columns.label is not None:
            labels = self._labels(block, columns)
        timestamps = None
        if columns.timestamp is not None:
            timestamps = self._seconds(self._times(block, columns), origin, block)
        return FrameBlock(start, frames, timestamps=timestamps, labels=labels)

    # -- Source interface ------------------------------------------------------------------

    def _compute_fingerprint(self, known: Mapping[str, Any] | None) -> Fingerprint:
        return url_fingerprint(self.uri, storage_options=self.storage_options, known=known)

    def _first(
        self, rows: Iterator[tuple[list[str], int]], header: list[str]
    ) -> tuple[_Rows, _Columns]:
        first = self._take(rows, 1)
        if not first.rows:
            raise SourceError(
                f"CSV source {self.uri!r} is zero-length: it has a header but no data rows."
            )
        return first, self._resolve(header, first.rows[0], first.lines[0])

    def _head(self, handle: Any) -> tuple[_Rows, _Rows, _Columns]:
        """The first row, the first rows a probe reads (it included), and the columns."""
        header, rows = self._rows(handle)
        first, columns = self._first(rows, header)
        more = self._take(rows, _PROBE_ROWS - 1)
        return first, _Rows(first.rows + more.rows, first.lines + more.lines), columns

    def probe(self) -> SourceProbe:
        """Read the header and the first rows, resolve the columns, and describe the series.

        The length is not known without reading the whole file, so it is reported as None.

        Raises:
            SourceNotFoundError: If the file does not exist.
            SourceError: If it is empty, a column is missing, or a first row is invalid.
        """
        with open_binary(self.uri, self.storage_options) as handle:
            first, block, columns = self._head(handle)
            class_names = self._resolve_classes(block, columns)
            origin = self._origin(first, columns)
            parsed = self._frame_block(0, block, columns, origin)
        interval = start_time = None
        if parsed.timestamps is not None and len(parsed.timestamps) > 1:
            interval = float(np.median(np.diff(parsed.timestamps)))
        if columns.iso_time:
            start_time = origin.isoformat()
        return SourceProbe(
            uri=self.uri,
            frame_shape=(len(columns.features),),
            dtype=np.dtype(np.float32),
            length=None,
            fingerprint=self.probe_fingerprint(),
            sample_interval=interval,
            start_time=start_time,
            partition=partition_of(self.uri),
            has_timestamps=columns.timestamp is not None,
            label_shape=() if columns.label is not None else None,
            label_dtype=np.dtype(np.float32) if columns.label is not None else None,
            class_names=class_names,
        )

    def columns(self) -> dict[str, Any]:
        """Return the resolved column names: ``{"features", "timestamp", "label"}``."""
        with open_binary(self.uri, self.storage_options) as handle:
            header, rows = self._rows(handle)
            _, columns = self._first(rows, header)
        pick = lambda i: None if i is None else columns.header[i]  # noqa: E731
        return {
            "features": columns.names(columns.features),
            "timestamp": pick(columns.timestamp),
            "label": pick(columns.label),
        }

    def blocks(self, block_frames: int, start: int = 0) -> Iterator[FrameBlock]:
        """Yield ``float32`` frame blocks with timestamps and labels when present.

        Rows before ``start`` are read and skipped (a CSV cannot be seeked by row).

        Raises:
            SourceError: On a ragged row, a non-numeric value or an invalid timestamp.
        """
        check_block_args(block_frames, start)
        if not self._classes_resolved:  # the classes of text labels are fixed before any block
            with open_binary(self.uri, self.storage_options) as handle:
                _, head, columns = self._head(handle)
            self._resolve_classes(head, columns)
        with open_binary(self.uri, self.storage_options) as handle:
            header, rows = self._rows(handle)
            first, columns = self._first(rows, header)
            origin = self._origin(first, columns)
            pending = first if start == 0 else _Rows([], [])
            if start > 1:
                for _ in islice(rows, start - 1):
                    pass
            position = start
            while True:
                block = self._take(rows, block_frames - len(pending.rows))
                block = _Rows(pending.rows + block.rows, pending.lines + block.lines)
                pending = _Rows([], [])
                if not block.rows:
                    return
                yield self._frame_block(position, block, columns, origin)
                position += len(block.rows)
                if len(block.rows) < block_frames:
                    return
