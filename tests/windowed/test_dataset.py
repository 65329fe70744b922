"""The window dataset: the reader's batches through tf.data, and the users' helper."""

from __future__ import annotations

import numpy as np
import pytest

from segflow.engine.windowing import WindowConfig, make_windows
from segflow.errors import ConfigError
from segflow.windowed import WindowReader, window_dataset, window_training_dataset
from storage.local import LocalStore
from storage.sequences import SequenceRepository
from tests.engine.store_helpers import write_sequence
from tests.windowed.data_helpers import realistic_table, shaped


def reader(seed=2, **kwargs):
    config = WindowConfig(time_steps=5, horizon=2)
    data = [realistic_table(n, 3, seed=i) for i, n in enumerate((61, 9, 4, 37))]
    sequences = [shaped(f, y, config, 6) for f, y in data]
    args = {"time_steps": 5, "batch_size": 8, "seed": seed, "pool_bytes": 500, **kwargs}
    return WindowReader(sequences, **args)


def assert_same(elements, batches):
    assert len(elements) == len(batches)
    for (inputs, labels), batch in zip(elements, batches, strict=True):
        np.testing.assert_array_equal(inputs["frames"].numpy(), batch["frames"])
        np.testing.assert_array_equal(inputs["mask"].numpy(), batch["mask"])
        np.testing.assert_array_equal(labels.numpy(), batch["labels"])


@pytest.mark.parametrize("start_batch", [0, 5])
def test_dataset_equals_iter_batches(start_batch):
    r = reader()
    assert r.plan.num_pools >= 3
    dataset = window_dataset(r, epoch=3, start_batch=start_batch)
    assert int(dataset.cardinality()) == r.num_batches - start_batch
    assert_same(list(dataset), list(r.iter_batches(3, start_batch)))
    assert_same(list(dataset), list(r.iter_batches(3, start_batch)))  # a second pass: same epoch


def test_each_iteration_is_the_next_epoch_when_asked():
    r = reader()
    dataset = window_dataset(r, epoch=1, reshuffle_each_iteration=True)
    assert_same(list(dataset), list(r.iter_batches(1)))
    assert_same(list(dataset), list(r.iter_batches(2)))


def test_bad_start_is_refused_when_built():
    r = reader()
    with pytest.raises(ConfigError, match="argument `start_batch`"):
        window_dataset(r, start_batch=r.num_batches)


def test_training_dataset_from_a_store_with_a_horizon(tmp_path):
    repo = SequenceRepository(LocalStore(tmp_path / "store"))
    data = [realistic_table(n, 2, seed=i) for i, n in enumerate((40, 23))]
    for i, (features, labels) in enumerate(data):
        write_sequence(repo, f"seq-{i}", features, labels=labels, chunk_length=8)
    dataset = window_training_dataset(repo, time_steps=4, batch_size=16, horizon=3, shuffle=False)
    elements = list(dataset)
    frames = np.concatenate([inputs["frames"].numpy() for inputs, _ in elements])
    labels = np.concatenate([y.numpy() for _, y in elements])
    config = WindowConfig(time_steps=4, horizon=3)
    windows = [make_windows(f, y, config) for f, y in data]
    np.testing.assert_array_equal(frames, np.concatenate([x for x, _ in windows]))
    np.testing.assert_array_equal(labels, np.concatenate([y[:, 0] for _, y in windows]))
