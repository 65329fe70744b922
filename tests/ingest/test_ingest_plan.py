"""The ingest planner decides skip / resume / replace / append from store state alone."""

from __future__ import annotations

import pytest

from segflow.ingest.plan import plan_ingest
from storage.sequences import SequenceMeta

DONE = SequenceMeta(
    length=40,
    complete=True,
    fingerprint="f1",
    frames_written=40,
    sources=({"fingerprint": "f1", "uri": "a", "start": 0, "stop": 40},),
)
PARTIAL = SequenceMeta(length=0, complete=False, fingerprint="f1", frames_written=16)
STAGED = SequenceMeta(length=0, complete=False, fingerprint="f2", frames_written=32)
APPENDING = DONE.replace(pending_append={"fingerprint": "f3", "frames_written": 8})

CASES = [
    # fingerprint, existing, staged, compatible, append, force -> action, staging, start
    ("f1", None, None, False, False, False, "create", False, 0),  # nothing stored yet
    ("f1", DONE, None, True, False, False, "skip", False, 0),  # unchanged and complete
    ("f1", DONE, None, True, False, True, "replace", True, 0),  # --force rewrites safely
    ("f2", DONE, None, True, False, False, "replace", True, 0),  # changed source → staging
    ("f2", DONE, STAGED, True, False, False, "replace", True, 32),  # resume the replacement
    ("f3", DONE, STAGED, True, False, False, "replace", True, 0),  # staged is stale
    ("f1", PARTIAL, None, True, False, False, "resume", False, 16),  # interrupted write
    ("f1", PARTIAL, None, False, False, False, "create", False, 0),  # incompatible partial
    ("f9", PARTIAL, None, True, False, False, "create", False, 0),  # source changed meanwhile
    ("f3", DONE, None, True, True, False, "append", False, 0),  # new frames
    ("f1", DONE, None, True, True, False, "skip", False, 0),  # already appended
    ("f3", APPENDING, None, True, True, False, "append", False, 8),  # resume an append
    ("f1", None, None, False, True, False, "create", False, 0),  # append to nothing creates
]


@pytest.mark.parametrize(
    "fingerprint, existing, staged, compatible, append, force, action, staging, start", CASES
)
def test_plan(fingerprint, existing, staged, compatible, append, force, action, staging, start):
    plan = plan_ingest(
        fingerprint,
        existing=existing,
        staged=staged,
        compatible=compatible,
        append=append,
        force=force,
    )
    assert (plan.action, plan.staging, plan.start) == (action, staging, start)
    assert plan.reason


PENDING = PARTIAL.replace(fingerprint="pending:size=9:mtime_ns=1:inode=2")


@pytest.mark.parametrize(
    "provisional, action, start",
    [
        ("pending:size=9:mtime_ns=1:inode=2", "resume", 16),  # same file: trust the partial
        ("pending:size=9:mtime_ns=5:inode=2", "create", 0),  # touched since: start over
        (None, "create", 0),  # the source cannot tell
    ],
)
def test_a_write_with_a_deferred_hash_resumes_only_for_the_same_file(provisional, action, start):
    plan = plan_ingest(
        "xxh3:abc:size=9",
        provisional=provisional,
        existing=PENDING,
        staged=None,
        compatible=True,
        append=False,
        force=False,
    )
    assert (plan.action, plan.start) == (action, start)


@pytest.mark.parametrize("count", [0, 1, 5, 16, 17, 129])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_sources_are_grouped_in_order_into_even_tasks(count, workers):
    from segflow.ingest.batch import group_sources

    pairs = [(f"u{i}", f"s{i}") for i in range(count)]
    groups = group_sources(pairs, workers=workers, per_worker=4)
    assert [p for g in groups for p in g] == pairs  # each source once, in order
    assert len(groups) == min(count, 4 * workers)
    assert not groups or max(map(len, groups)) - min(map(len, groups)) <= 1


@pytest.mark.parametrize(
    ("count", "workers", "min_size", "sizes"),
    [
        (40, 2, 16, [20, 20]),  # Dask: tasks cost 100-400 ms, so never 2 sources a task
        (480, 2, 16, [60] * 8),  # many sources: still a few groups per worker
        (5, 2, 16, [3, 2]),  # fewer than min_size: still one group per worker
        (1, 4, 16, [1]),
        (0, 2, 16, []),
    ],
)
def test_groups_hold_at_least_min_size_sources(count, workers, min_size, sizes) -> None:
    from segflow.ingest.batch import group_sources

    pairs = [(f"u{i}", f"s{i}") for i in range(count)]
    groups = group_sources(pairs, workers=workers, min_size=min_size)
    assert [len(g) for g in groups] == sizes
    assert [p for g in groups for p in g] == pairs  # consecutive, in order


def test_appends_go_one_group_per_sequence_in_order_and_results_come_back_in_order() -> None:
    from segflow.ingest import IngestResult
    from segflow.ingest.batch import by_sequence, in_input_order

    pairs = [("d1/a", "a"), ("d1/b", "b"), ("d2/a", "a"), ("d3/a", "a"), ("d2/b", "b")]
    groups = by_sequence(pairs)
    assert groups == [[pairs[0], pairs[2], pairs[3]], [pairs[1], pairs[4]]]
    results = [IngestResult(u, s, "appended") for g in reversed(groups) for u, s in g]
    assert [(r.source, r.sequence_id) for r in in_input_order(pairs, results)] == pairs
    with pytest.raises(ValueError, match="got none for"):
        in_input_order(pairs, results[:-1])
