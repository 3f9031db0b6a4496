"""Predictions waiting for their label, in Redis: they survive restarts and leave worker memory.

The label join (:class:`~streams.join.LabelJoin`) keeps recent waiting predictions in memory and
journals every one it stores and every one a label consumes.  The worker hands that journal to
the store with each checkpoint, and :class:`PendingPredictions` turns it into commands of the
same Redis transaction:

- ``<prefix>:{<model>}:pending:<bucket>``: a hash, request id -> the prediction (JSON), one per
  ``ttl / 24`` seconds of event time, expiring ``ttl`` plus two buckets after its last write;
- a prediction consumed by a join is deleted from its bucket in the same transaction;
- ``<prefix>:{<model>}:pending-layouts``: a hash, layout id -> the feature names (JSON), so each
  prediction names its layout by a 12-character id instead of repeating the names (with 20
  features named f0-f19, 222 instead of 319 bytes a prediction, 459 with names like
  feature_0); refreshed with every write, so it expires after the buckets it serves.

So after a crash the waiting predictions in Redis are exactly those of the checkpoint's
positions.  A label whose prediction is not in memory (the worker restarted, or the prediction
is older than the ``DRIFTLINE_JOIN_MEMORY`` most recent) is looked up here first
(:meth:`PendingPredictions.load`), in what is still buffered and then in Redis.

The time-to-live is counted in event time by the join and in wall-clock time by Redis (an
upper bound that keeps Redis clean); replays of old traffic keep their buckets for a day from
when they are written.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Sequence
from typing import Any

import orjson

from contracts.events import LabelEvent
from contracts.redis_keys import RedisKeys
from streams.join import StoredPrediction, layout_id

log = logging.getLogger(__name__)

_BUCKETS = 24


class PendingPredictions:
    def __init__(self, keys: RedisKeys, ttl_s: float) -> None:
        self.keys, self.ttl_s = keys, ttl_s
        self.bucket_s = ttl_s / _BUCKETS
        # model -> request id -> (bucket, JSON); model -> [(request id, bucket)]
        self._writes: dict[str, dict[str, tuple[int, bytes]]] = defaultdict(dict)
        self._deletes: dict[str, list[tuple[str, int]]] = defaultdict(list)
        # the writes of each flush under way (two may overlap: a rebalance's and the timer's)
        self._in_flight: list[dict[str, dict[str, tuple[int, bytes]]]] = []
        # model -> layout id -> feature names, of the predictions this worker wrote
        self._layouts: dict[str, dict[str, tuple[str, ...]]] = defaultdict(dict)

    @property
    def has_changes(self) -> bool:
        return any(self._writes.values()) or any(self._deletes.values())

    def bucket(self, event_time: float) -> int:
        return int(event_time // self.bucket_s)

    def add(
        self,
        model_id: str,
        written: Sequence[StoredPrediction],
        consumed: Sequence[tuple[str, float]],
    ) -> None:
        writes, layouts = self._writes[model_id], self._layouts[model_id]
        names: tuple[str, ...] | None = None
        layout = ""
        for stored in written:
            if stored.names is not names:  # a batch's predictions share one tuple of names
                names, layout = stored.names, layout_id(stored.names)
                layouts.setdefault(layout, names)
            writes[stored.request_id] = (self.bucket(stored.event_time), stored.to_bytes(layout))
        deletes = self._deletes[model_id]
        for request_id, event_time in consumed:
            if writes.pop(request_id, None) is None:  # written in an earlier flush
                deletes.append((request_id, self.bucket(event_time)))

    # -- flushing (inside the store's transaction) ----------------------------------------------
    def take(self, models: Collection[str] | None = None) -> tuple[dict, dict]:
        """The buffered writes and deletes (of ``models`` only, if given), for one flush."""
        if models is None:
            taken = (dict(self._writes), dict(self._deletes))
            self._writes, self._deletes = defaultdict(dict), defaultdict(list)
        else:
            taken = (
                {m: self._writes.pop(m) for m in models if m in self._writes},
                {m: self._deletes.pop(m) for m in models if m in self._deletes},
            )
        self._in_flight.append(taken[0])
        return taken

    def give_back(self, kept: tuple[dict, dict]) -> None:
        """What a failed flush did not write, buffered again (call :meth:`done` after)."""
        writes, deletes = kept
        for model_id, entries in writes.items():
            for request_id, entry in entries.items():
                self._writes[model_id].setdefault(request_id, entry)
        for model_id, entries in deletes.items():
            self._deletes[model_id][:0] = entries

    def track(self, taken: tuple[dict, dict]) -> None:
        """Keep ``taken``'s writes readable (:meth:`load`) as those of a flush under way, until
        :meth:`done` (the store's transactions whose answer was lost, until it knows)."""
        self._in_flight.append(taken[0])

    def done(self, taken: tuple[dict, dict]) -> None:
        """The flush of ``taken`` (:meth:`take`'s answer) has ended, written or given back."""
        self._in_flight = [w for w in self._in_flight if w is not taken[0]]

    def write(self, pipe: Any, taken: tuple[dict, dict]) -> None:
        writes, deletes = taken
        keep = int(self.ttl_s + 2 * self.bucket_s)
        for model_id, entries in writes.items():
            if entries:
                key = self.keys.pending_layouts(model_id)
                known = self._layouts[model_id]
                pipe.hset(key, mapping={k: orjson.dumps(v) for k, v in known.items()})
                pipe.expire(key, keep)
            by_bucket: dict[int, dict[str, bytes]] = defaultdict(dict)
            for request_id, (bucket, raw) in entries.items():
                by_bucket[bucket][request_id] = raw
            for bucket, mapping in by_bucket.items():
                key = self.keys.pending(model_id, bucket)
                pipe.hset(key, mapping=mapping)
                pipe.expire(key, keep)
        for model_id, entries in deletes.items():
            fields: dict[int, list[str]] = defaultdict(list)
            for request_id, bucket in entries:
                fields[bucket].append(request_id)
            for bucket, request_ids in fields.items():
                pipe.hdel(self.keys.pending(model_id, bucket), *request_ids)

    # -- reading --------------------------------------------------------------------------------
    async def load(
        self, client: Any, model_id: str, labels: Sequence[LabelEvent]
    ) -> list[StoredPrediction]:
        """The waiting predictions these labels judge: from the buffers, then from Redis (the
        buckets a prediction made up to the time-to-live before its label can be in)."""
        found: dict[str, bytes] = {}
        layouts = dict(self._layouts.get(model_id, {}))
        buffers = [self._writes, *self._in_flight]
        for buffer in (b.get(model_id, {}) for b in buffers):
            for label in labels:
                entry = buffer.get(label.request_id)
                if entry is not None:
                    found.setdefault(label.request_id, entry[1])
        # most labels come within a bucket of their prediction: the label's bucket and the one
        # before it first, then the older ones for what is still missing (one round trip, and
        # two buckets' replies instead of the ~25 of the whole time-to-live, in the usual case)
        for older in (False, True):
            buckets: dict[int, list[str]] = defaultdict(list)
            for label in labels:
                if label.request_id in found:
                    continue
                last = self.bucket(label.event_time)
                first = self.bucket(label.event_time - self.ttl_s)
                span = range(first, last - 1) if older else range(max(first, last - 1), last + 1)
                for bucket in span:
                    buckets[bucket].append(label.request_id)
            if buckets:
                await self._read_buckets(client, model_id, buckets, found, layouts)
        predictions = []
        for request_id, raw in found.items():
            try:
                predictions.append(StoredPrediction.from_bytes(model_id, request_id, raw, layouts))
            except KeyError as exc:  # its layout expired before it: not seen as waiting
                log.warning(
                    "waiting prediction %s of %s: unknown layout %s", request_id, model_id, exc
                )
        return predictions

    async def _read_buckets(
        self,
        client: Any,
        model_id: str,
        buckets: dict[int, list[str]],
        found: dict[str, bytes],
        layouts: dict[str, tuple[str, ...]],
    ) -> None:
        """Into ``found``: the predictions of these request ids in Redis, bucket by bucket;
        into ``layouts``: the model's feature layouts (in the same round trip)."""
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(self.keys.pending_layouts(model_id))
        order = []
        for bucket, request_ids in sorted(buckets.items()):
            ids = sorted(set(request_ids))
            pipe.hmget(self.keys.pending(model_id, bucket), ids)
            order.append(ids)
        kept, *answers = await pipe.execute()
        for layout, names in kept.items():
            layout = layout.decode() if isinstance(layout, bytes) else layout
            layouts.setdefault(layout, tuple(orjson.loads(names)))
        for ids, values in zip(order, answers, strict=True):
            for request_id, raw in zip(ids, values, strict=True):
                if raw is not None:
                    found.setdefault(request_id, raw)
