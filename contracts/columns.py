"""Many inference events of one model held as columns: what a columnar envelope decodes to.

A columnar envelope (``docs/schemas.md``) carries each field once for all its events; decoded,
it stays columns (the feature values one float64 matrix) so that the worker's batch path reads
them without building an event object per element.  :class:`EventColumns` is still a
``Sequence[InferenceEvent]``: indexing builds the event, so code that wants events gets them.

>>> import numpy as np
>>> columns = EventColumns("m", 1, None, ["r1", "r2"], ["v1", "v1"], [5.0, 6.0], ("x", "y"),
...                        np.array([[0.5, 1.0], [1.5, 2.0]]), [1, 0], [0.9, 0.6], [None, 3.0])
>>> len(columns), columns[1].features, columns[1].latency_ms
(2, {'x': 1.5, 'y': 2.0}, 3.0)
>>> columns.column("event_time"), columns[1:].request_ids
([5.0, 6.0], ['r2'])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter
from typing import Any, overload

import numpy as np

from contracts.events import InferenceEvent, Prediction


@dataclass(eq=False, slots=True)
class EventColumns(Sequence[InferenceEvent]):
    model_id: str
    schema_version: int
    task: str | None
    request_ids: list[str]
    versions: list[str]
    times: list[float]
    names: tuple[str, ...]
    matrix: np.ndarray  # a row per event, a column per name
    predictions: list[Prediction]
    scores: list[float | None]
    latencies: list[float | None]

    def __len__(self) -> int:
        return len(self.request_ids)

    @overload
    def __getitem__(self, index: int) -> InferenceEvent: ...

    @overload
    def __getitem__(self, index: slice) -> EventColumns: ...

    def __getitem__(self, index: int | slice) -> InferenceEvent | EventColumns:
        if isinstance(index, slice):
            return EventColumns(
                self.model_id,
                self.schema_version,
                self.task,
                self.request_ids[index],
                self.versions[index],
                self.times[index],
                self.names,
                self.matrix[index],
                self.predictions[index],
                self.scores[index],
                self.latencies[index],
            )
        return InferenceEvent(
            self.model_id,
            self.versions[index],
            self.request_ids[index],
            self.times[index],
            dict(zip(self.names, self.matrix[index].tolist(), strict=True)),
            self.predictions[index],
            self.scores[index],
            None,
            self.latencies[index],
            self.schema_version,
            self.task,
        )

    def column(self, name: str) -> list[Any]:
        """Every event's ``name`` field (an :class:`InferenceEvent` attribute, not features);
        a column itself where one is held, not a copy: read it, do not change it."""
        if name == "probabilities":  # columns carry none (an envelope with them is rows)
            return [None] * len(self)
        found = getattr(self, _COLUMNS[name])
        return found if isinstance(found, list) else [found] * len(self)

    def prediction_fields(self) -> Any:
        """Each event's fields in :class:`~streams.join.StoredPrediction`'s order, up to the
        features (see :data:`PREDICTION_FIELDS`)."""
        return zip(
            self.times,
            repeat(self.model_id),
            self.versions,
            self.request_ids,
            self.predictions,
            self.scores,
            repeat(None),
            self.latencies,
            repeat(self.schema_version),
            repeat(self.task),
        )

    @staticmethod
    def concat(parts: Sequence[EventColumns]) -> EventColumns | None:
        """One block of several of one model's blocks, if their layouts agree (else None)."""
        first = parts[0]
        if len(parts) == 1:
            return first
        alike = (first.model_id, first.schema_version, first.task, first.names)
        if any((p.model_id, p.schema_version, p.task, p.names) != alike for p in parts):
            return None

        def joined(name: str) -> list[Any]:
            return [x for p in parts for x in getattr(p, name)]

        return EventColumns(
            *alike[:3],
            joined("request_ids"),
            joined("versions"),
            joined("times"),
            first.names,
            np.concatenate([p.matrix for p in parts]),
            joined("predictions"),
            joined("scores"),
            joined("latencies"),
        )


_COLUMNS = {
    "model_id": "model_id",
    "schema_version": "schema_version",
    "task": "task",
    "request_id": "request_ids",
    "model_version": "versions",
    "event_time": "times",
    "prediction": "predictions",
    "score": "scores",
    "latency_ms": "latencies",
}

#: an event's fields in the order of :class:`streams.join.StoredPrediction`, up to its features
#: (``tests/unit/test_columnar.py`` holds the two to the same order)
PREDICTION_FIELD_NAMES = (
    "event_time",
    "model_id",
    "model_version",
    "request_id",
    "prediction",
    "score",
    "probabilities",
    "latency_ms",
    "schema_version",
    "task",
)
PREDICTION_FIELDS = attrgetter(*PREDICTION_FIELD_NAMES)


def column(events: Sequence[InferenceEvent], name: str) -> list[Any]:
    """Every event's ``name`` field, from columns where the events are :class:`EventColumns`."""
    if isinstance(events, EventColumns):
        return events.column(name)
    return list(map(attrgetter(name), events))


def prediction_fields(events: Sequence[InferenceEvent]) -> Any:
    """:meth:`EventColumns.prediction_fields` for any events."""
    if isinstance(events, EventColumns):
        return events.prediction_fields()
    return map(PREDICTION_FIELDS, events)


def concat(parts: Sequence[Sequence[InferenceEvent]]) -> Sequence[InferenceEvent]:
    """Several messages' events as one sequence: one block of columns where every part is
    columns of one layout, else a list of events."""
    if parts and all(isinstance(p, EventColumns) for p in parts):
        joined = EventColumns.concat(parts)  # type: ignore[arg-type]
        if joined is not None:
            return joined
    return [event for part in parts for event in part]
