"""Which stored sequences a run takes: one selection for training and prediction alike.

A :class:`~segflow.config.SelectionConfig` names explicit ``ids``, or takes every complete
sequence; ``pattern`` (shell-style) and ``partition`` then filter. Training and prediction call
:func:`select_sequences` with the same configuration, so a model is predicted over exactly the
sequences it would be trained on.
"""

from __future__ import annotations

import fnmatch

from segflow.config import SelectionConfig
from segflow.errors import ConfigError, IncompleteSequenceError, SequenceNotFoundError
from storage.sequences import SequenceRepository

__all__ = ["select_sequences"]


def select_sequences(repo: SequenceRepository, selection: SelectionConfig) -> list[str]:
    """Return the ids of the complete sequences ``selection`` picks, in run order.

    Explicit ``ids`` keep their order (duplicates dropped) and must all exist and be complete;
    without ``ids`` every complete sequence is taken, sorted, and incomplete ones are skipped.
    ``pattern`` and ``partition`` then filter.

    Args:
        repo: The sequences of a data store.
        selection: What to take.

    Returns:
        The selected ids, never empty.

    Raises:
        SequenceNotFoundError: If explicit ids are missing (the message names them).
        IncompleteSequenceError: If explicit ids are not complete (the message names them).
        ConfigError: If nothing is selected.
    """
    if selection.ids is not None:
        ids = list(dict.fromkeys(selection.ids))
        _require_complete(repo, ids)
    else:
        ids = [i for i in repo.ids() if repo.meta(i).complete]
    if selection.pattern is not None:
        ids = [i for i in ids if fnmatch.fnmatchcase(i, selection.pattern)]
    if selection.partition is not None:
        ids = [i for i in ids if repo.meta(i).partition == selection.partition]
    if not ids:
        raise ConfigError(
            f"No complete sequence in store {repo.store.url!r} matches the selection "
            f"{selection.model_dump(exclude_none=True)}; expected at least one."
        )
    return ids


def _require_complete(repo: SequenceRepository, ids: list[str]) -> None:
    """Raise, naming every id, if explicit ids are missing or not complete."""
    missing = [i for i in ids if not repo.exists(i)]
    incomplete = [i for i in ids if i not in missing and not repo.meta(i).complete]
    also = f"; also not complete: {incomplete}" if incomplete else ""
    if missing:
        raise SequenceNotFoundError(
            f"Selected sequence(s) {missing} not found in store {repo.store.url!r}{also}."
        )
    if incomplete:
        raise IncompleteSequenceError(
            f"Selected sequence(s) {incomplete} in store {repo.store.url!r} are not complete "
            "(an ingest did not finish); re-run the ingest or leave them out."
        )
