"""Shards of a prediction run: the selected sequences split across workers, as frozen data.

A sharded run predicts each :class:`Shard` as a durable run of its own (see
:func:`segflow.predicting.run.predict`'s ``shard``): its own checkpoints
(:func:`segflow.registry.shard_run_key`) and its own lock (:func:`shard_lock_name`), so shards
of one tag run at once on different workers and a retried shard resumes from its checkpoint.

Every write of a prediction run goes to one sequence's own arrays (``predictions/<tag>/<id>/``),
so shards that share no sequence write disjoint regions of the store, whole Zarr chunks
included (no two shards ever touch one chunk). :func:`check_disjoint` refuses a plan that
breaks this: concurrent partial writes into one chunk silently lose data.

:func:`plan_shards` balances shards by frames: longest sequence first, each onto the shard
with the fewest frames so far (Graham's LPT rule, within 4/3 of the best possible balance).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from segflow.config import PredictParams
from segflow.errors import ConfigError
from segflow.ids import validate_id
from segflow.selection import select_sequences
from storage.predictions import PredictionRepository
from storage.sequences import SequenceRepository
from storage.validation import require_positive_int

__all__ = [
    "Shard",
    "check_disjoint",
    "hold_tag",
    "plan_prediction_shards",
    "plan_shards",
    "shard_lock_name",
]


@dataclass(frozen=True)
class Shard:
    """One part of a sharded prediction run.

    Attributes:
        index: Its position among the run's shards, from 0.
        count: How many shards the run has.
        ids: Its sequences, in the run's selection order.
        frames: Frames of its sequences in all.

    >>> shard = Shard(1, 2, ("b", "c"), 30)
    >>> shard.name
    'shard-1-of-2'
    >>> shard.select(["a", "b", "c"])
    ['b', 'c']
    """

    index: int
    count: int
    ids: tuple[str, ...]
    frames: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ConfigError(
                f"Received shard index={self.index} of count={self.count}, expected "
                f"0 <= index < count."
            )

    @property
    def name(self) -> str:
        """``shard-<index>-of-<count>``: names the shard in keys, tasks and reports."""
        return f"shard-{self.index}-of-{self.count}"

    def select(self, selected: Sequence[str]) -> list[str]:
        """This shard's ids in the order of ``selected`` (the run's selection).

        Raises:
            ConfigError: If the shard holds ids that ``selected`` does not.
        """
        mine = set(self.ids)
        missing = sorted(mine.difference(selected))
        if missing:
            raise ConfigError(
                f"Received {self.name} with sequences {missing[:5]} outside the run's "
                f"selection, expected a shard planned from the same selection."
            )
        return [i for i in selected if i in mine]


def plan_shards(lengths: Sequence[tuple[str, int]], count: int) -> tuple[Shard, ...]:
    """Split sequences into at most ``count`` shards balanced by frames.

    Longest first, each onto the shard with the fewest frames so far (on a tie, the one with
    fewer sequences, then the lowest index; equal lengths keep their input order), so the
    plan is deterministic. There are ``min(count, len(lengths))`` shards, none empty; each
    keeps its ids in input order.

    Args:
        lengths: ``(sequence id, frames)`` in the run's order; ids must be unique.
        count: Shards wanted (workers of the cluster), a positive integer.

    >>> [(s.ids, s.frames) for s in plan_shards([("a", 5), ("b", 9), ("c", 4), ("d", 3)], 2)]
    [(('b', 'd'), 12), (('a', 'c'), 9)]
    >>> plan_shards([("a", 5)], 3)
    (Shard(index=0, count=1, ids=('a',), frames=5),)

    Raises:
        ConfigError: On a count that is not a positive integer, or a repeated id.
    """
    require_positive_int("count", count)
    ids = [sequence_id for sequence_id, _ in lengths]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise ConfigError(f"Received repeated sequence ids {repeated[:5]}, expected unique ids.")
    shards = min(count, len(lengths))
    # (frames so far, sequences so far, index): equal loads go to the emptier shard, so
    # sequences of no frames spread too and no shard is left empty.
    heap = [(0, 0, index) for index in range(shards)]
    members: list[list[int]] = [[] for _ in range(shards)]
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i][1], i))
    for position in order:
        frames, count_so_far, index = heapq.heappop(heap)
        members[index].append(position)
        heapq.heappush(heap, (frames + lengths[position][1], count_so_far + 1, index))
    return tuple(
        Shard(
            index,
            shards,
            tuple(lengths[p][0] for p in sorted(positions)),
            sum(lengths[p][1] for p in positions),
        )
        for index, positions in enumerate(members)
    )


def check_disjoint(shards: Sequence[Shard]) -> None:
    """Refuse shards that share a sequence, or that do not form one run's numbering.

    A sequence's predictions (its arrays and their chunks) must be written by exactly one
    shard: two workers writing parts of one Zarr chunk at once lose one another's rows.

    >>> check_disjoint(plan_shards([("a", 1), ("b", 2)], 2))
    >>> check_disjoint([Shard(0, 2, ("a", "b"), 3), Shard(1, 2, ("b",), 2)])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    segflow.errors.ConfigError: Received shards that share sequence 'b' (shard-0-of-2 and ...

    Raises:
        ConfigError: Naming a shared sequence and both shards, or the bad numbering.
    """
    owner: dict[str, Shard] = {}
    for shard in shards:
        for sequence_id in shard.ids:
            other = owner.setdefault(sequence_id, shard)
            if other is not shard:
                raise ConfigError(
                    f"Received shards that share sequence {sequence_id!r} ({other.name} and "
                    f"{shard.name}), expected each sequence in exactly one shard: concurrent "
                    f"writes into one chunk lose data."
                )
    numbering = sorted((s.index, s.count) for s in shards)
    if numbering != [(i, len(shards)) for i in range(len(shards))]:
        raise ConfigError(
            f"Received shards numbered {numbering}, expected indexes 0..{len(shards) - 1} "
            f"each of count {len(shards)}."
        )


def plan_prediction_shards(params: PredictParams, count: int) -> tuple[Shard, ...]:
    """The checked shards of ``params``' selection: at most ``count``, balanced by frames.

    Balanced by each sequence's stored frames (a sequence the run will skip or continue
    weighs as much as one it predicts from frame 0: telling them apart needs the model).

    Raises:
        ConfigError: Nothing selected (see :func:`~segflow.selection.select_sequences`).
    """
    repo = SequenceRepository(params.store.open())
    ids = select_sequences(repo, params.selection)
    shards = plan_shards([(i, repo.meta(i).length) for i in ids], count)
    check_disjoint(shards)
    return shards


def shard_lock_name(model_tag: str, shard: Shard) -> str:
    """The name a shard's run locks under, beside the tag's own lock.

    >>> shard_lock_name("tiny", Shard(0, 2, ("a",), 5))
    'tiny.shard-0-of-2'
    """
    return f"{validate_id(model_tag, what='model tag')}.{shard.name}"


@contextmanager
def hold_tag(params: PredictParams, owner: str, *, break_lock: bool = False) -> Iterator[Any]:
    """Hold the tag's lock while the shards run elsewhere: no other run writes the tag.

    Each shard's run takes only its own lock (:func:`shard_lock_name`), so the shards of one
    run go at once while a second run of the tag, sharded or not, is refused.

    Raises:
        LockedError: If another run holds the tag's lock.
    """
    preds = PredictionRepository(params.store.open())
    with preds.lock(params.model_tag, owner, break_lock=break_lock or params.break_lock) as record:
        yield record
