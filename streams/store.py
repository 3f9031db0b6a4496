"""Thin Redis persistence under the pure monitors (sink contract: ``add_*`` then ``flush``).

Writes are buffered in memory and sent in one MULTI/EXEC transaction per flush, so a model's
detector checkpoint (with the offsets it reflects) and its counters land together or not at
all.  A failed flush keeps the buffer (metrics and checkpoints are overwritten by newer ones,
samples and counters are retried), so a Redis outage delays what readers see but loses nothing
the worker still holds.  (On Redis Cluster the transaction must be split per model: each model's
keys share a hash tag, the global counters do not.)
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from typing import Any

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from contracts.redis_keys import RedisKeys

log = logging.getLogger(__name__)


def _hash_value(value: Any) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    return value


class RedisStore:
    def __init__(self, redis_url: str, keys: RedisKeys, labelled_keep: int = 5000) -> None:
        self.redis_url = redis_url
        self.keys = keys
        self.labelled_keep = labelled_keep
        self._client: aioredis.Redis | None = None
        self._metrics: dict[str, dict[str, dict[str, Any]]] = {}
        self._labelled: dict[str, list[str]] = defaultdict(list)
        self._model_counts: dict[str, Counter[str]] = defaultdict(Counter)
        self._counts: Counter[str] = Counter()
        self._checkpoints: dict[str, str] = {}
        self.failed_flushes = 0

    @property
    def client(self) -> aioredis.Redis:
        # Created lazily so the connection pool binds to the running event loop.
        if self._client is None:
            self._client = aioredis.Redis.from_url(self.redis_url)
        return self._client

    def add_metrics(self, model_id: str, windows: dict[str, dict[str, Any]]) -> None:
        self._metrics[model_id] = windows

    def add_labelled(self, model_id: str, sample: dict[str, Any]) -> None:
        self._labelled[model_id].append(json.dumps(sample, separators=(",", ":")))

    def add_model_counts(self, model_id: str, counts: dict[str, int]) -> None:
        self._model_counts[model_id].update(counts)

    def add_counts(self, counts: dict[str, int]) -> None:
        self._counts.update(counts)

    def add_checkpoint(self, model_id: str, checkpoint: dict[str, Any]) -> None:
        self._checkpoints[model_id] = json.dumps(checkpoint, separators=(",", ":"))

    async def load_checkpoint(self, model_id: str) -> dict[str, Any] | None:
        """The model's last checkpoint, or None (none yet, or unreadable: logged)."""
        try:
            raw = await self.client.get(self.keys.checkpoint(model_id))
        except (RedisError, OSError) as exc:
            log.warning("could not read the checkpoint of %s (%s); starting afresh", model_id, exc)
            return None
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            log.warning("checkpoint of %s is not JSON (%s); starting afresh", model_id, exc)
            return None

    async def flush(self) -> bool:
        """Send everything buffered; return False (and keep the buffer) if Redis failed."""
        if not (
            self._metrics
            or self._labelled
            or self._model_counts
            or self._counts
            or self._checkpoints
        ):
            return True
        pipe = self.client.pipeline(transaction=True)
        for model_id, windows in self._metrics.items():
            pipe.sadd(self.keys.models(), model_id)
            for window, snapshot in windows.items():
                mapping = {k: _hash_value(v) for k, v in snapshot.items()}
                pipe.hset(self.keys.metrics(model_id, window), mapping=mapping)
        for model_id, samples in self._labelled.items():
            key = self.keys.labelled(model_id)
            pipe.lpush(key, *samples)
            pipe.ltrim(key, 0, self.labelled_keep - 1)
        for model_id, counts in self._model_counts.items():
            for name, n in counts.items():
                pipe.hincrby(self.keys.model_counters(model_id), name, n)
        for name, n in self._counts.items():
            pipe.hincrby(self.keys.counters(), name, n)
        for model_id, checkpoint in self._checkpoints.items():
            pipe.set(self.keys.checkpoint(model_id), checkpoint)
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            self.failed_flushes += 1
            log.warning(
                "Redis flush failed (%s); keeping %d models' data for the next try",
                exc,
                len(self._metrics),
            )
            return False
        self._metrics.clear()
        self._labelled.clear()
        self._model_counts.clear()
        self._counts.clear()
        self._checkpoints.clear()
        return True

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
