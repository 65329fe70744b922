"""Which stored sequences a run takes: one selection for training and prediction alike.

A :class:`~segflow.config.SelectionConfig` names explicit ``ids``, or takes every complete
sequence; ``pattern`` (shell-style) and ``partition`` then filter. Training and prediction call
:func:`select_sequences` with the same configuration, so a model is predicted over exactly the
sequences it would be trained on.
"""

from __future__ import annotations

import fnmatch

import numpy as np

from segflow.config import SelectionConfig
from segflow.errors import ConfigError, IncompleteSequenceError, SequenceNotFoundError
from storage.sequences import SequenceRepository

__all__ = ["check_no_overlap", "select_sequences", "split_validation"]


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


def split_validation(
    repo: SequenceRepository | None,
    selected: list[str],
    *,
    ids: list[str] | None = None,
    pattern: str | None = None,
    fraction: float | None = None,
    seed: int = 0,
) -> tuple[list[str], list[str]]:
    """Split a training selection into the sequences trained on and those held out.

    Held out: the explicit ``ids`` (which must not also be selected for training), those of
    the selection matching ``pattern``, and a seeded ``fraction`` of the selection (at least
    one sequence, at least one left to train on). Held-out sequences are never trained on.

    Args:
        repo: The sequences of the store (None: explicit ids are taken as they are).
        selected: The training selection, in run order.
        ids: Explicit validation ids (need not be in ``selected``).
        pattern: Shell-style pattern picking validation ids out of ``selected``.
        fraction: Fraction of ``selected`` held out at random (seeded, by sequence).
        seed: Seed of the random split.

    Returns:
        ``(train, validation)``: ``train`` keeps the run order.

    Raises:
        ConfigError: If explicit validation ids were also explicitly selected for training,
            or nothing would be left to train on.

    >>> repo = None  # only explicit ids and patterns need no store
    >>> split_validation(repo, ["a", "b", "c", "d"], pattern="d")
    (['a', 'b', 'c'], ['d'])
    """
    held: list[str] = []
    if ids:
        held += select_sequences(repo, SelectionConfig(ids=ids)) if repo is not None else ids
    if pattern is not None:
        held += [i for i in selected if fnmatch.fnmatchcase(i, pattern)]
    if fraction is not None:
        pool = [i for i in selected if i not in held]
        count = min(max(1, round(fraction * len(selected))), len(pool) - 1)
        order = np.random.default_rng(seed).permutation(len(pool))
        held += [pool[i] for i in sorted(order[: max(count, 0)])]
    held = list(dict.fromkeys(held))
    train = [i for i in selected if i not in held]
    if not train:
        raise ConfigError(
            f"Received a validation split that holds out every selected sequence "
            f"({len(selected)}); expected at least one sequence left to train on."
        )
    return train, held


def check_no_overlap(train_ids: list[str] | None, validation_ids: list[str]) -> None:
    """Refuse sequences named explicitly both to train on and to validate on.

    Raises:
        ConfigError: Naming the sequences in both lists.

    >>> check_no_overlap(["a", "b"], ["b"])
    Traceback (most recent call last):
    ...
    segflow.errors.ConfigError: Received sequence(s) ['b'] both in the training ids and in \
`validation_ids`; expected disjoint lists (validation sequences are never trained on).
    """
    both = [i for i in validation_ids if train_ids and i in train_ids]
    if both:
        raise ConfigError(
            f"Received sequence(s) {both} both in the training ids and in `validation_ids`; "
            "expected disjoint lists (validation sequences are never trained on)."
        )


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
