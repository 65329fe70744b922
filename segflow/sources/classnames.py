"""Label cells as people write them: numbers, yes/no, true/false, blanks, and class names.

A label column holding text (``rain``, ``sun``, ...) is a class label: each name becomes a
class index, and the names are stored with the sequence (``SequenceMeta.class_names``) and
carried into the model, its predictions and the evaluation reports. The indices follow the
names' sorted order unless a vocabulary is given (``SourceConfig.class_names``, CLI
``--classes rain,snow,sun``), which fixes them across files: give one when a dataset's files
do not all hold every class, since training needs one mapping for all of them.

Binary spellings (``true``/``false``, ``yes``/``no``) are 0/1 and a blank cell is NaN (an
unlabelled frame), whether or not the column holds names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "ClassNames",
    "UnknownLabel",
    "is_text_label",
    "label_number",
    "label_values",
    "sorted_names",
]

#: Spellings of binary labels people write, and their values; a blank is unlabelled.
_WORDS = {"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0, "": float("nan")}

#: A label vocabulary: class name -> class index.
ClassNames = Mapping[str, int]


class UnknownLabel(ValueError):
    """A label cell that is neither a number nor a known class; ``row`` is its position."""

    def __init__(self, row: int, message: str) -> None:
        super().__init__(message)
        self.row = row


def label_number(cell: str) -> float:
    """A label cell as a number: digits, true/false, yes/no, or blank (NaN: unlabelled).

    >>> [label_number(c) for c in ("3", "True", "no", "0.5", " ")]
    [3.0, 1.0, 0.0, 0.5, nan]

    Raises:
        ValueError: If the cell is text that is none of these (a class name).
    """
    word = _WORDS.get(cell.strip().lower())
    return word if word is not None else float(cell)


def is_text_label(cell: str) -> bool:
    """Whether a cell is a class name rather than a number, a binary word or a blank.

    >>> [is_text_label(c) for c in ("rain", "2", "yes", "")]
    [True, False, False, False]
    """
    try:
        label_number(cell)
    except ValueError:
        return True
    return False


def sorted_names(cells: Iterable[str]) -> tuple[str, ...]:
    """The class names among ``cells``, sorted (their indices are their positions).

    >>> sorted_names(["sun", "rain", "", "sun", "fog "])
    ('fog', 'rain', 'sun')
    """
    return tuple(sorted({cell.strip() for cell in cells if is_text_label(cell)}))


def label_values(cells: Sequence[str], classes: ClassNames | None) -> np.ndarray:
    """The ``float32`` label of each cell: its number, or its class's index.

    >>> label_values(["rain", "", "sun"], {"rain": 0, "sun": 1}).tolist()
    [0.0, nan, 1.0]

    Raises:
        UnknownLabel: For the first cell that is neither a number nor a known class.
    """
    values = np.empty(len(cells), dtype=np.float32)
    for row, cell in enumerate(cells):
        try:
            values[row] = label_number(cell)
        except ValueError:
            index = None if classes is None else classes.get(cell.strip())
            if index is None:
                known = "no class names" if classes is None else f"classes {list(classes)}"
                message = f"label {cell!r} is not a number or one of {known}"
                raise UnknownLabel(row, message) from None
            values[row] = index
    return values
