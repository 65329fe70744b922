"""Models kept by a worker process between the shards it predicts.

Loading a model reads and checks its files and rebuilds it (seconds with TensorFlow); a
worker that predicts several shards, or several runs, of one model loads it once. Entries are
keyed by the checkpoint store's URL, the tag and :func:`~segflow.registry.model_fingerprint`
(a digest of the manifest that records the weights' digests), so a re-exported or further
trained model is loaded afresh, never served stale.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from segflow.registry import LoadedModel, load_model, model_fingerprint
from storage.base import Store
from storage.validation import require_positive_int

__all__ = ["ModelCache"]

#: A cache entry's key: checkpoint store URL, model tag, model fingerprint.
CacheKey = tuple[str, str, str]


class ModelCache:
    """The last ``size`` models loaded, least recently used dropped first (thread-safe).

    Args:
        size: Models kept.

    Attributes:
        loads: Models loaded so far (a hit loads none).

    >>> cache = ModelCache(size=1)
    >>> cache.loads, len(cache)
    (0, 0)
    """

    def __init__(self, size: int = 2) -> None:
        self.size = require_positive_int("size", size)
        self.loads = 0
        self._models: OrderedDict[CacheKey, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._models)

    def get(self, store: Store, model_tag: str) -> LoadedModel:
        """The model ``model_tag`` of ``store``: the kept one if it is current, else loaded.

        Raises:
            CheckpointError: As :func:`~segflow.registry.load_model`.
        """
        key = (store.url, model_tag, model_fingerprint(store, model_tag))
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            model = load_model(store, model_tag)
            self.loads += 1
            # Replaced while it loaded: use it this once, keep nothing under a stale key.
            if model_fingerprint(store, model_tag) == key[2]:
                self._models[key] = model
                while len(self._models) > self.size:
                    self._models.popitem(last=False)
            return model

    def clear(self) -> None:
        """Drop every kept model."""
        with self._lock:
            self._models.clear()
