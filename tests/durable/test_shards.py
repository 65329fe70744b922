"""Shard plans (pure) and shard runs in the core: balanced, disjoint, durable, equal results.

The planner is checked against a brute-force oracle: every assignment of a few sequences to
the shards, whose best balance the greedy plan must come within Graham's 4/3 bound of.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segflow.errors import ConfigError, LockedError
from segflow.predicting import (
    ModelCache,
    hold_tag,
    merge_reports,
    plan_prediction_shards,
    plan_shards,
    predict,
)
from segflow.predicting.shards import Shard, check_disjoint, shard_lock_name
from segflow.registry import shard_run_key
from tests.durable.test_predicting import TAG, World, assert_outputs_close, world_of

# ------------------------------------------------------------------------------ the plan


def best_makespan(frames: list[int], count: int) -> int:
    """The oracle: the lightest heaviest shard over every assignment (brute force)."""
    best = sum(frames)
    for assignment in itertools.product(range(count), repeat=len(frames)):
        loads = [0] * count
        for shard, length in zip(assignment, frames, strict=True):
            loads[shard] += length
        best = min(best, max(loads))
    return best


@settings(max_examples=100, deadline=None)
@given(
    frames=st.lists(st.integers(0, 500), min_size=1, max_size=6),
    count=st.integers(1, 3),
)
def test_plan_covers_each_sequence_once_and_is_near_the_best_balance(
    frames: list[int], count: int
) -> None:
    lengths = [(f"s{i}", n) for i, n in enumerate(frames)]
    shards = plan_shards(lengths, count)
    check_disjoint(shards)
    assert len(shards) == min(count, len(frames))
    assert sorted(i for s in shards for i in s.ids) == sorted(i for i, _ in lengths)
    assert all(s.ids for s in shards)  # none empty
    order = [i for i, _ in lengths]
    for shard in shards:  # selection order kept, frames counted right
        assert list(shard.ids) == sorted(shard.ids, key=order.index)
        assert shard.frames == sum(n for i, n in lengths if i in shard.ids)
    m = len(shards)
    makespan = max(s.frames for s in shards)
    assert makespan * 3 * m <= (4 * m - 1) * best_makespan(frames, m)  # Graham's LPT bound
    assert plan_shards(lengths, count) == shards  # deterministic


@pytest.mark.parametrize(
    ("lengths", "count", "expected"),
    [
        # longest first onto the lightest; on a tie (9 and 9) the lower index
        ([("a", 5), ("b", 9), ("c", 4), ("d", 3)], 2, [("b", "d"), ("a", "c")]),
        # more shards than sequences: one each, no empty shard
        ([("a", 5), ("b", 1)], 4, [("a",), ("b",)]),
        # equal lengths: input order, round robin
        ([("a", 2), ("b", 2), ("c", 2), ("d", 2)], 2, [("a", "c"), ("b", "d")]),
        # one shard: everything, in order
        ([("x", 1), ("y", 7)], 1, [("x", "y")]),
        # empty sequences still belong to a shard
        ([("a", 0), ("b", 0), ("c", 3)], 2, [("c",), ("a", "b")]),
    ],
)
def test_plan_table(
    lengths: list[tuple[str, int]], count: int, expected: list[tuple[str, ...]]
) -> None:
    assert [s.ids for s in plan_shards(lengths, count)] == expected


@pytest.mark.parametrize(
    ("shards", "message"),
    [
        # a sequence in two shards: two workers would write its chunks
        ([Shard(0, 2, ("a", "b"), 2), Shard(1, 2, ("b",), 1)], "share sequence 'b'"),
        # two shards with one index: their checkpoints and locks would collide
        ([Shard(0, 2, ("a",), 1), Shard(0, 2, ("b",), 1)], "numbered"),
        # counts that disagree with the plan
        ([Shard(0, 3, ("a",), 1), Shard(1, 3, ("b",), 1)], "numbered"),
    ],
)
def test_overlapping_or_misnumbered_shards_are_refused(shards: list[Shard], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_disjoint(shards)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: plan_shards([("a", 1)], 0), "`count`, expected a positive integer, got 0"),
        (lambda: plan_shards([("a", 1), ("a", 2)], 2), r"repeated sequence ids \['a'\]"),
        (lambda: Shard(2, 2, ("a",), 1), "index=2 of count=2"),
        (lambda: shard_run_key("t", 3, 2), "index=3 of count=2"),
        (lambda: Shard(0, 1, ("zz",), 1).select(["a"]), r"shard-0-of-1 with sequences \['zz'\]"),
    ],
)
def test_bad_plans_are_refused_in_one_line(call: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()  # type: ignore[operator]


def test_keys_of_shards_collide_with_no_tag() -> None:
    assert shard_run_key("m", 0, 2) == "predict.shard-0-of-2-m"
    assert shard_lock_name("m", Shard(1, 2, ("a",), 1)) == "m.shard-1-of-2"


# ------------------------------------------------------------------------------ shard runs

LENGTHS = {f"s{i}": n for i, n in enumerate((41, 7, 23, 0, 30, 12, 55))}


@pytest.fixture
def world(tmp_path: Path) -> World:
    return world_of(tmp_path, LENGTHS)


def test_shards_run_at_once_and_equal_one_run(world: World, tmp_path: Path) -> None:
    reference = world_of(tmp_path / "ref", LENGTHS)
    predict(reference.params(), run_id="one")
    params = world.params()
    shards = plan_prediction_shards(params, 3)
    assert [s.frames for s in shards] == [55, 60, 53]
    cache = ModelCache()
    with hold_tag(params, "flow-1"):
        # Shards overlap in time: each holds its own lock while the next starts.
        reports = []
        for shard in shards:
            model = cache.get(world.ckpt, TAG)
            taken = world.preds.lock(shard_lock_name(TAG, shard), "someone-else")
            with taken, pytest.raises(LockedError):
                predict(params, run_id="flow-1", shard=shard, model=model)
            reports.append(
                predict(params, run_id="flow-1", shard=shard, model=cache.get(world.ckpt, TAG))
            )
        with pytest.raises(LockedError):  # a run of the whole tag waits for the flow
            predict(params)
    assert cache.loads == 1
    merged = merge_reports(reports, seconds=1.0)
    assert merged.predicted == len(LENGTHS) and merged.frames == sum(LENGTHS.values())
    assert merged.retried_shards == () and [s.index for s in merged.shards] == [0, 1, 2]
    got, want = world.outputs(), reference.outputs()
    assert sorted(got) == sorted(want)
    for sid in want:
        np.testing.assert_allclose(got[sid], want[sid], atol=1e-6, err_msg=sid)
    assert world.ckpt.list("runs") == [] and world.preds.read_lock(TAG) is None
    assert all(world.preds.meta(TAG, sid).flow_run_id == "flow-1" for sid in LENGTHS)


def test_a_shard_says_where_it_ran_when_and_at_what_cost(world: World) -> None:
    params = world.params()
    before = time.time()
    (shard,) = plan_prediction_shards(params, 1)
    with hold_tag(params, "flow-1"):
        (outcome,) = predict(params, run_id="flow-1", shard=shard).shards
    assert outcome.worker == f"{socket.gethostname()}:{os.getpid()}"
    assert outcome.cores == len(os.sched_getaffinity(0))
    # The engine's step thread and the writer's threads were still running at the end.
    assert outcome.threads >= 3
    assert before <= outcome.started <= outcome.ended <= time.time()
    assert outcome.cpu_seconds > 0


class Crash(Exception):
    pass


def test_a_retried_shard_resumes_its_own_checkpoint(world: World) -> None:
    params = world.params(every=2)
    shards = plan_prediction_shards(params, 2)
    predict(params, run_id="flow-2", shard=shards[1])  # the other shard: done

    def crash_at_step_5(event: object) -> None:
        if getattr(event, "step", 0) == 5:
            raise Crash

    with pytest.raises(Crash):
        predict(params, run_id="flow-2", shard=shards[0], on_step=crash_at_step_5)
    assert [k for k in world.ckpt.list("runs") if k.endswith("manifest.json")]
    again = predict(params, run_id="flow-2", shard=shards[0])
    (outcome,) = again.shards
    assert outcome.retried and outcome.resumed_from == 4 and outcome.index == 0
    assert outcome.retry_reason == "resumed its checkpoint at step 4"
    want = {sid: world.oracle(sid) if n else np.zeros((0, 2)) for sid, n in LENGTHS.items()}
    assert_outputs_close(world.outputs(), want)
    assert world.ckpt.list("runs") == []


def test_an_earlier_attempts_lock_is_broken_only_for_the_same_run(world: World) -> None:
    params = world.params()
    (shard,) = plan_prediction_shards(params, 1)
    lock = shard_lock_name(TAG, shard)
    world.data.write_bytes(
        f"predictions/{lock}/.lock", b'{"owner": "flow-3", "pid": 1, "host": "elsewhere"}'
    )
    with pytest.raises(LockedError, match="flow-3"):
        predict(params, run_id="flow-4", shard=shard)
    report = predict(params, run_id="flow-3", shard=shard)
    assert report.retried_shards == (0,) and report.shards[0].resumed_from is None
    assert "lock was found" in report.retries
    assert world.preds.read_lock(lock) is None


def test_model_cache_loads_again_when_the_model_changes(world: World) -> None:
    from tests.durable.test_predicting import export

    cache = ModelCache(size=1)
    first = cache.get(world.ckpt, TAG)
    assert cache.get(world.ckpt, TAG) is first and cache.loads == 1
    export(world.ckpt, world.config, seed=7)
    second = cache.get(world.ckpt, TAG)
    assert second.digest != first.digest and cache.loads == 2 and len(cache) == 1
