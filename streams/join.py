"""Joins label events to the predictions they judge, by request id, in bounded memory.

Labels may arrive long after their prediction, and (with two topics) occasionally before it;
both sides wait in insertion-ordered maps.  An entry waits at most ``ttl_s`` of event time and
the maps hold at most ``max_pending`` entries each; what is pushed out is counted, never silently
lost.

>>> from contracts.events import InferenceEvent, LabelEvent
>>> join = LabelJoin(ttl_s=600, max_pending=1000)
>>> p = InferenceEvent("m", "v1", "r1", 100.0, {"x": 1.0}, prediction=1)
>>> join.add_prediction(p) is None
True
>>> outcome = join.add_label(LabelEvent("m", "r1", label=0, event_time=160.0))
>>> outcome.prediction.request_id, outcome.label.label
('r1', 0)
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import count, islice, repeat
from operator import add
from typing import Any, NamedTuple

import numpy as np
import orjson

from contracts.columns import PREDICTION_FIELDS, EventColumns, column, prediction_fields
from contracts.events import InferenceEvent, LabelEvent
from streams.seen_ids import SeenIds


@dataclass(frozen=True, slots=True)
class JoinedOutcome:
    prediction: InferenceEvent
    label: LabelEvent


class StoredPrediction(NamedTuple):
    """A waiting prediction, compact: its feature values in a float array beside a shared
    tuple of names (about a quarter of an event with its own dict of 20 floats)."""

    event_time: float
    model_id: str
    model_version: str
    request_id: str
    prediction: Any
    score: float | None
    probabilities: dict[str, float] | None
    latency_ms: float | None
    schema_version: int
    task: str | None
    names: tuple[str, ...]
    values: array

    def to_bytes(self, layout: str | None = None) -> bytes:
        r"""Everything but the model and request ids (the backing store's key and field): a JSON
        list of the other fields, a newline, then the feature values as little-endian float64
        (formatting 20 floats as text cost more than the rest of the write).  ``layout``: the
        id under which the feature names are kept apart (:func:`layout_id`), written instead
        of the names (20 features named f0-f19: 222 bytes instead of 319; 459 named feature_0...).

        >>> p = StoredPrediction(5.0, "m", "v1", "r1", 1, 0.9, None, None, 1, None, ("x",),
        ...                      array("d", [0.5]))
        >>> p.to_bytes()
        b'[5.0,"v1",1,0.9,null,null,1,null,["x"]]\n\x00\x00\x00\x00\x00\x00\xe0?'
        >>> StoredPrediction.from_bytes("m", "r1", p.to_bytes()) == p
        True
        >>> kept = p.to_bytes(layout_id(p.names))
        >>> kept.partition(b"\n")[0]
        b'[5.0,"v1",1,0.9,null,null,1,null,"0a7651f82b16"]'
        >>> StoredPrediction.from_bytes("m", "r1", kept, {layout_id(p.names): ("x",)}) == p
        True
        """
        values = self.values
        if _BIG_ENDIAN:
            values = array("d", values)
            values.byteswap()
        header = orjson.dumps(
            [
                self.event_time,
                self.model_version,
                self.prediction,
                self.score,
                self.probabilities,
                self.latency_ms,
                self.schema_version,
                self.task,
                self.names if layout is None else layout,
            ]
        )
        return header + b"\n" + values.tobytes()

    @classmethod
    def from_bytes(
        cls,
        model_id: str,
        request_id: str,
        raw: bytes | str,
        layouts: Mapping[str, tuple[str, ...]] | None = None,
    ) -> StoredPrediction:
        """:meth:`to_bytes` back (``layouts``: layout id -> feature names, for one written with
        a layout id); also reads the all-JSON form earlier releases wrote (a list with the
        values last, no newline).  A layout id not in ``layouts`` raises KeyError."""
        if isinstance(raw, str):
            raw = raw.encode()
        header, newline, packed = raw.partition(b"\n")
        if newline:
            values = array("d")
            values.frombytes(packed)
            if _BIG_ENDIAN:
                values.byteswap()
            t, version, prediction, score, probabilities, latency, schema, task, names = (
                orjson.loads(header)
            )
        else:
            t, version, prediction, score, probabilities, latency, schema, task, names, listed = (
                orjson.loads(raw)
            )
            values = array("d", listed)
        if isinstance(names, str):
            names = (layouts or {})[names]
        return cls(
            float(t),
            model_id,
            version,
            request_id,
            prediction,
            score,
            probabilities,
            latency,
            schema,
            task,
            tuple(names),
            values,
        )

    def event(self) -> InferenceEvent:
        return InferenceEvent(
            model_id=self.model_id,
            model_version=self.model_version,
            request_id=self.request_id,
            event_time=self.event_time,
            features=dict(zip(self.names, self.values, strict=True)),
            prediction=self.prediction,
            score=self.score,
            probabilities=self.probabilities,
            latency_ms=self.latency_ms,
            schema_version=self.schema_version,
            task=self.task,
        )


_BIG_ENDIAN = sys.byteorder == "big"


def layout_id(names: tuple[str, ...]) -> str:
    """A short, stable id of a feature layout (48 bits of BLAKE2b over the names)."""
    return hashlib.blake2b("\x00".join(names).encode(), digest_size=6).hexdigest()


_new_stored = partial(tuple.__new__, StoredPrediction)  # skips NamedTuple's Python-level __new__


def _stored(event: InferenceEvent, names: tuple[str, ...], features: array) -> StoredPrediction:
    """A prediction as it waits: its fields, with the feature values in ``features``."""
    return _new_stored((*PREDICTION_FIELDS(event), names, features))


class LabelJoin:
    """``journal``: record every prediction stored and every one consumed by a join, for a
    backing store (the worker writes them to Redis with each checkpoint, so waiting predictions
    survive a restart); ``memory``: then keep only this many waiting predictions in memory, the
    older ones live in the backing store alone and come back through :meth:`adopt`."""

    def __init__(
        self,
        ttl_s: float = 3600.0,
        max_pending: int = 100_000,
        memory: int | None = None,
        journal: bool = False,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_pending = max_pending
        self.memory = memory if journal else None
        self.journal = journal
        self.written: list[StoredPrediction] = []  # journal: stored since the last drain
        self.consumed: list[tuple[str, float]] = []  # journal: (request id, its event time)
        self._undrained: set[str] = set()  # written, not yet drained: not to be spilled
        #: whether the oldest waiting prediction may have been drained (a spill can free memory)
        self._spillable = self.memory is not None
        self._held = 0  # label lookups in flight (:meth:`held`): nothing spills meanwhile
        self._predictions: OrderedDict[str, StoredPrediction] = OrderedDict()
        self._layouts: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple per layout
        self._labels: OrderedDict[str, LabelEvent] = OrderedDict()
        self.expired_predictions = 0  # never labelled in time
        self.expired_labels = 0  # label whose prediction never came (or came too late)
        self.duplicates = 0
        self._reported: dict[str, int] = {}  # what take_counts last handed out
        # request ids already joined (bounded like the rest): a late duplicate of either side
        # must not wait for, and join with, a redelivered copy of the other
        self._joined = SeenIds(ttl_s, max_pending)
        # event time before which nothing waiting can have outlived the TTL (the oldest
        # entries' time + TTL); -inf whenever an entry leaves or enters other than at the end
        self._quiet_until = -float("inf")

    def _join(self, prediction: InferenceEvent, label: LabelEvent) -> JoinedOutcome:
        self._joined.add(prediction.request_id, max(prediction.event_time, label.event_time))
        if self.journal:
            self.consumed.append((prediction.request_id, prediction.event_time))
        self._expire(label.event_time)
        return JoinedOutcome(prediction, label)

    def add_prediction(self, event: InferenceEvent) -> JoinedOutcome | None:
        if event.request_id in self._joined:
            self.duplicates += 1
            return None
        label = self._labels.pop(event.request_id, None)
        if label is not None:
            self._quiet_until = -float("inf")
            return self._join(event, label)
        if event.request_id in self._predictions:
            self.duplicates += 1  # redelivery: keep the first
            return None
        self._keep(self._store(event))
        return None

    def label_waits(self, request_id: str) -> bool:
        """Whether the label of this request came first and waits for its prediction."""
        return request_id in self._labels

    def labels_wait(self, request_ids: Iterable[str]) -> bool:
        """Whether the label of any of these requests came first (:meth:`label_waits`)."""
        return bool(self._labels) and not self._labels.keys().isdisjoint(request_ids)

    def add_predictions(
        self, events: Sequence[InferenceEvent], values: np.ndarray | None = None
    ) -> None:
        """:meth:`add_prediction` on each event in order, where no event's label waits
        (:meth:`label_waits`; the batch path ends a run of events before one whose label does).
        ``values``: the events' feature values, a row each, in the order of their features
        (the batch path's matrix, when every event has the same features in the same order)."""
        joined, waiting, labels = self._joined, self._predictions, self._labels
        names = self._layout(events) if values is not None and events else ()
        # :meth:`_keep` inlined, with its expiry called only where it can change anything (its
        # own early return, decided here without the calls), and the batch's ids looked up in
        # the joined ones at once: the same result (tests/unit/test_join.py), 1.26 instead of
        # 1.76 us per prediction, 2.3 instead of 9.9 with 5,000 ids joined
        ids = column(events, "request_id")
        seen: np.ndarray | None = joined.contains_many(ids)
        quiet_joined = joined.quiet_before()
        if values is not None and self._add_at_once(events, ids, seen, quiet_joined, values, names):
            return
        rows, width = (values.tobytes(), values.shape[1] * 8) if values is not None else (b"", 0)
        journal, written, undrained = self.journal, self.written, self._undrained
        most, memory = self.max_pending, self.memory
        for i, fields in enumerate(prediction_fields(events)):
            request_id = fields[3]
            if (request_id in joined if seen is None else seen[i]) or request_id in waiting:
                self.duplicates += 1  # a redelivery (of a joined one): keep the first
                continue
            if values is None:
                stored = self._store(events[i])
            else:
                features = array("d")
                features.frombytes(rows[i * width : (i + 1) * width])
                stored = _new_stored((*fields, names, features))
            waiting[request_id] = stored
            t = stored.event_time
            if len(waiting) == 1:
                self._became_oldest(t)
            if journal:
                written.append(stored)
                undrained.add(request_id)
            if (
                t >= quiet_joined
                or t >= self._quiet_until
                or len(waiting) > most
                or len(labels) > most
            ):
                forgotten = joined.forgotten
                self._expire(t)  # joined ids too
                if joined.forgotten != forgotten:  # some left: ask for each from now on
                    seen = None
                quiet_joined = joined.quiet_before()
            if self._spillable and len(waiting) > memory:  # type: ignore[operator]
                self._spill()

    def _add_at_once(
        self,
        events: Sequence[InferenceEvent],
        ids: list[str],
        seen: np.ndarray,
        quiet_joined: float,
        values: np.ndarray,
        names: tuple[str, ...],
    ) -> bool:
        """:meth:`add_predictions`' usual run, stored in a few passes that stay in C: no
        duplicate, and nothing due to expire or beyond the size cap while the run arrives.  The
        same waiting entries, journal and spill as one at a time (``tests/unit/test_join.py``);
        False, with nothing changed, for any other run.  The spill then pops the run's excess at
        once instead of one call per arrival: with 250 in memory and a drain per 1,000-event
        run, 1.05 instead of 1.3 us per prediction stored and drained."""
        waiting, n, width = self._predictions, len(ids), values.shape[1] * 8
        if (
            not n
            or not width
            or seen.any()
            or len(waiting) + n > self.max_pending
            or len(self._labels) > self.max_pending
            or not waiting.keys().isdisjoint(ids)
            or len(set(ids)) != n
        ):
            return False
        times = column(events, "event_time")
        # nothing expires while no arrival reaches the TTL of an entry that is first in line:
        # the first waiting prediction (the run's first if none waits) and label, and each
        # prediction the spill makes first in turn
        oldest = [w[next(iter(w))].event_time for w in (waiting, self._labels) if w]
        if not waiting:
            oldest.append(times[0])
        first = oldest.copy()
        spilled = self._spill_count(len(waiting) + n)
        if spilled:
            first.extend(p.event_time for p in islice(waiting.values(), 1, spilled + 1))
            if spilled == len(waiting):
                first.append(times[0])
        if max(times) >= min(quiet_joined, min(first) + self.ttl_s):
            return False
        self._quiet_until = min(oldest) + self.ttl_s  # what an expiry scan would have set
        rows = values.tobytes()
        features = map(
            partial(array, "d"),
            map(rows.__getitem__, map(slice, range(0, n * width, width), count(width, width))),
        )
        stored = list(
            map(_new_stored, map(add, prediction_fields(events), zip(repeat(names), features)))
        )
        waiting.update(zip(ids, stored, strict=True))
        if self.journal:
            self.written.extend(stored)
            self._undrained.update(ids)
        if self._spillable and len(waiting) > self.memory:  # type: ignore[operator]
            self._spill(spilled)  # counted above for this size
        return True

    def _spill_count(self, size: int) -> int:
        """How many of the oldest waiting predictions :meth:`_spill` would drop were there
        ``size`` of them: those beyond ``memory`` up to the first not yet drained."""
        if not self._spillable or self._held or size <= self.memory:  # type: ignore[operator]
            return 0
        beyond = size - self.memory  # type: ignore[operator]
        undrained = [*map(self._undrained.__contains__, islice(self._predictions, beyond)), True]
        return undrained.index(True)

    def _keep(self, stored: StoredPrediction) -> None:
        """A new waiting prediction: journal it, expire, spill the oldest beyond memory."""
        waiting = self._predictions
        waiting[stored.request_id] = stored
        if len(waiting) == 1:
            self._became_oldest(stored.event_time)
        if self.journal:
            self.written.append(stored)
            self._undrained.add(stored.request_id)
        self._expire(stored.event_time)
        if self._spillable and len(waiting) > self.memory:
            self._spill()

    def _spill(self, popped: int | None = None) -> None:
        """Beyond ``memory``, the oldest waiting predictions stay in the backing store only,
        once they are in it (drained to the store); none while a lookup is :meth:`held`.
        ``popped``: :meth:`_spill_count` of the map as it is, where the caller has it."""
        waiting = self._predictions
        if self._held or len(waiting) <= self.memory:  # type: ignore[operator]
            return
        popped = self._spill_count(len(waiting)) if popped is None else popped
        if popped < len(waiting) - self.memory:  # type: ignore[operator]
            self._spillable = False  # the oldest is not drained: none is, until the next drain
        deque(map(waiting.popitem, repeat(False, popped)), maxlen=0)  # the oldest first
        if popped and waiting:  # the new first entry is the one the expiry looks at
            self._became_oldest(waiting[next(iter(waiting))].event_time)

    def _layout(self, events: Sequence[InferenceEvent]) -> tuple[str, ...]:
        """The first event's feature names, as a tuple shared by every prediction with that
        layout."""
        names = events.names if isinstance(events, EventColumns) else tuple(events[0].features)
        names = self._layouts.setdefault(names, names)
        if len(self._layouts) > 1000:  # layouts churn (ever-new feature names): stop sharing
            self._layouts.clear()
        return names

    def _store(self, event: InferenceEvent) -> StoredPrediction:
        return _stored(event, self._layout([event]), array("d", event.features.values()))

    def add_label(self, label: LabelEvent) -> JoinedOutcome | None:
        return self._add_label(label, label.request_id in self._joined)

    def add_labels(self, labels: Sequence[LabelEvent]) -> list[JoinedOutcome | None]:
        """:meth:`add_label` on each label in order, with the joined request ids looked up for
        all of them at once (one numpy lookup per bucket instead of one per label and bucket).

        >>> join = LabelJoin(ttl_s=600)
        >>> _ = join.add_prediction(InferenceEvent("m", "v1", "r1", 100.0, {"x": 1.0}, 1))
        >>> [o is not None for o in join.add_labels([LabelEvent("m", "r1", 0, 160.0)] * 2)]
        [True, False]
        >>> join.duplicates
        1
        """
        joined = self._joined
        seen = joined.contains_many([label.request_id for label in labels]).tolist()
        forgotten, joined_now = joined.forgotten, set()
        outcomes = []
        for label, was_joined in zip(labels, seen, strict=True):
            request_id = label.request_id
            if joined.forgotten != forgotten:  # an expiry forgot some: ask for each from now on
                is_joined = request_id in joined
            else:
                is_joined = was_joined or request_id in joined_now
            outcome = self._add_label(label, is_joined)
            if outcome is not None:
                joined_now.add(request_id)
            outcomes.append(outcome)
        return outcomes

    def _add_label(self, label: LabelEvent, is_joined: bool) -> JoinedOutcome | None:
        if is_joined:
            self.duplicates += 1
            return None
        waiting = self._predictions
        first = next(iter(waiting), None)
        stored = waiting.pop(label.request_id, None)
        if stored is not None:
            if label.request_id == first:  # the first in line left: the next may be older
                self._quiet_until = -float("inf")
            return self._join(stored.event(), label)
        if label.request_id in self._labels:
            self.duplicates += 1
            return None
        self._labels[label.request_id] = label
        if len(self._labels) == 1:
            self._became_oldest(label.event_time)
        self._expire(label.event_time)
        return None

    # -- the backing store ------------------------------------------------------------------
    def missing(self, labels: list[LabelEvent]) -> list[LabelEvent]:
        """Labels whose prediction is neither waiting in memory nor already joined: the ones
        to look up in the backing store."""
        waiting = self._predictions
        joined = self._joined.contains_many([label.request_id for label in labels]).tolist()
        return [
            label
            for label, is_joined in zip(labels, joined, strict=True)
            if not is_joined and label.request_id not in waiting
        ]

    @contextmanager
    def held(self) -> Iterator[None]:
        """No waiting prediction leaves memory inside this block.  The worker looks up in the
        backing store the predictions of a label batch that memory lacks (:meth:`missing`) and
        awaits the answer; meanwhile more predictions may arrive.  Were older ones spilled then,
        a label whose prediction was in memory when the lookup began (so not looked up) would
        find it in neither and wait for it forever.  Memory may exceed ``memory`` for the
        length of one lookup; the next stored prediction spills the excess.

        >>> join = LabelJoin(ttl_s=600, memory=1, journal=True)
        >>> _ = join.drain()
        >>> with join.held():
        ...     for i in range(3):
        ...         _ = join.add_prediction(InferenceEvent("m", "v1", f"r{i}", i, {}, 1))
        ...     _ = join.drain()
        ...     join.pending
        (3, 0)
        >>> join.pending
        (3, 0)
        >>> join.add_prediction(InferenceEvent("m", "v1", "r3", 3.0, {}, 1)) is None
        True
        >>> join.pending
        (1, 0)
        """
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1

    def adopt(self, predictions: list[StoredPrediction]) -> None:
        """Predictions read back from the backing store, waiting again (oldest first in line)."""
        joined = self._joined.contains_many([stored.request_id for stored in predictions])
        newest_first = sorted(
            zip(predictions, joined.tolist(), strict=True),
            key=lambda pair: pair[0].event_time,
            reverse=True,
        )
        for stored, is_joined in newest_first:
            if is_joined or stored.request_id in self._predictions:
                continue
            self._predictions[stored.request_id] = stored
            self._predictions.move_to_end(stored.request_id, last=False)
            self._quiet_until = -float("inf")
            self._spillable = self.memory is not None  # from the store: may leave again

    def drain(self) -> tuple[list[StoredPrediction], list[tuple[str, float]]]:
        """The journal since the last drain: (predictions stored, predictions consumed)."""
        written, consumed = self.written, self.consumed
        self.written, self.consumed = [], []
        self._undrained = set()
        if self.memory is not None:  # in the store now: the oldest may leave memory at once
            self._spillable = True
            self._spill()
        return written, consumed

    # -- checkpoints ----------------------------------------------------------------------------
    def early_labels(self, limit: int) -> list[list[Any]]:
        """The newest ``limit`` labels waiting for their prediction, oldest first, JSON-ready:
        a checkpoint keeps them, so a label applied before a crash still finds its prediction
        after the restart (its own offset is behind the checkpoint and is not read again)."""
        waiting = list(self._labels.values())[-limit:] if limit > 0 else []
        return [[w.request_id, w.label, w.event_time, w.schema_version] for w in waiting]

    def restore_early_labels(self, model_id: str, rows: list[list[Any]]) -> None:
        """:meth:`early_labels`' rows back into the waiting labels (oldest first)."""
        for request_id, label, event_time, schema_version in rows:
            if request_id not in self._labels:
                self._labels[str(request_id)] = LabelEvent(
                    model_id, str(request_id), label, float(event_time), int(schema_version)
                )
        self._quiet_until = -float("inf")

    def take_counts(self) -> dict[str, int]:
        """What was expired or ignored since the last call (the worker adds it to the model's
        counters in Redis): ``predictions_expired`` (no label within the TTL or the size cap),
        ``labels_expired`` (their prediction never came), ``join_duplicates``."""
        now = {
            "predictions_expired": self.expired_predictions,
            "labels_expired": self.expired_labels,
            "join_duplicates": self.duplicates,
        }
        taken = {k: v - self._reported.get(k, 0) for k, v in now.items()}
        self._reported = now
        return {k: v for k, v in taken.items() if v}

    @property
    def pending(self) -> tuple[int, int]:
        """(predictions waiting for a label, labels waiting for a prediction)."""
        return len(self._predictions), len(self._labels)

    def _became_oldest(self, event_time: float) -> None:
        self._quiet_until = min(self._quiet_until, event_time + self.ttl_s)

    def _expire(self, now: float) -> None:
        self._joined.expire(now)
        predictions, labels, most = self._predictions, self._labels, self.max_pending
        if now < self._quiet_until and len(predictions) <= most and len(labels) <= most:
            return  # the usual case: the oldest entries are still within the TTL
        horizon = now - self.ttl_s
        self.expired_predictions += _trim(predictions, horizon, most)
        self.expired_labels += _trim(labels, horizon, most)
        oldest = [w[next(iter(w))].event_time for w in (predictions, labels) if w]
        # the first entries change by a join or an adoption (which reset this), a trim (here),
        # a spill to the backing store or an arrival in an empty map (_became_oldest)
        self._quiet_until = min(oldest) + self.ttl_s if oldest else -float("inf")


def _trim(waiting: OrderedDict, horizon: float, max_size: int) -> int:
    removed = 0
    while waiting:
        oldest = next(iter(waiting.values()))
        if len(waiting) <= max_size and oldest.event_time >= horizon:
            break
        waiting.popitem(last=False)
        removed += 1
    return removed
