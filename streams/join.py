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

from collections import OrderedDict
from dataclasses import dataclass

from contracts.events import InferenceEvent, LabelEvent


@dataclass(frozen=True, slots=True)
class JoinedOutcome:
    prediction: InferenceEvent
    label: LabelEvent


class LabelJoin:
    def __init__(self, ttl_s: float = 3600.0, max_pending: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.max_pending = max_pending
        self._predictions: OrderedDict[str, InferenceEvent] = OrderedDict()
        self._labels: OrderedDict[str, LabelEvent] = OrderedDict()
        self.expired_predictions = 0  # never labelled in time
        self.expired_labels = 0  # label whose prediction never came (or came too late)
        self.duplicates = 0
        # request ids already joined (bounded like the rest): a late duplicate of either side
        # must not wait for, and join with, a redelivered copy of the other
        self._joined: OrderedDict[str, float] = OrderedDict()

    def _join(self, prediction: InferenceEvent, label: LabelEvent) -> JoinedOutcome:
        self._joined[prediction.request_id] = max(prediction.event_time, label.event_time)
        self._expire(label.event_time)
        return JoinedOutcome(prediction, label)

    def add_prediction(self, event: InferenceEvent) -> JoinedOutcome | None:
        if event.request_id in self._joined:
            self.duplicates += 1
            return None
        label = self._labels.pop(event.request_id, None)
        if label is not None:
            return self._join(event, label)
        if event.request_id in self._predictions:
            self.duplicates += 1  # redelivery: keep the first
            return None
        self._predictions[event.request_id] = event
        self._expire(event.event_time)
        return None

    def add_label(self, label: LabelEvent) -> JoinedOutcome | None:
        if label.request_id in self._joined:
            self.duplicates += 1
            return None
        prediction = self._predictions.pop(label.request_id, None)
        if prediction is not None:
            return self._join(prediction, label)
        if label.request_id in self._labels:
            self.duplicates += 1
            return None
        self._labels[label.request_id] = label
        self._expire(label.event_time)
        return None

    @property
    def pending(self) -> tuple[int, int]:
        """(predictions waiting for a label, labels waiting for a prediction)."""
        return len(self._predictions), len(self._labels)

    def _expire(self, now: float) -> None:
        horizon = now - self.ttl_s
        self.expired_predictions += _trim(self._predictions, horizon, self.max_pending)
        self.expired_labels += _trim(self._labels, horizon, self.max_pending)
        joined = self._joined
        while joined and (len(joined) > self.max_pending or next(iter(joined.values())) < horizon):
            joined.popitem(last=False)


def _trim(waiting: OrderedDict, horizon: float, max_size: int) -> int:
    removed = 0
    while waiting:
        oldest = next(iter(waiting.values()))
        if len(waiting) <= max_size and oldest.event_time >= horizon:
            break
        waiting.popitem(last=False)
        removed += 1
    return removed
