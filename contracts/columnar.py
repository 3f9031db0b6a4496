"""Columnar envelopes: many events of one model, each field given once as a column.

.. code-block:: json

    {"schema_version": 1, "model_id": "churn", "columns": {
        "request_id": ["r1", "r2"], "model_version": "v3", "event_time": [1.7e9, 1.7e9],
        "features": {"tenure": [3.0, 14.0], "spend": [20.5, 7.25]},
        "prediction": [1, 0], "score": [0.91, 0.64], "latency_ms": [4.1, 3.9]}}

Each column is a list with one value per event (the same length for all), except ``features``
and ``probabilities``, objects of lists (one per feature or class); a value that is not a list
(``"model_version": "v3"`` above) applies to every event.  A model server that batches its
predictions (a DataFrame, an array per field) writes this without a loop, and the worker reads
it without one: decoded, the events stay columns (:class:`~contracts.columns.EventColumns`), the
features one float64 matrix.

The same events as a row envelope (``{"events": [...]}``) are accepted and refused alike: a
column of the wrong length, or ``features`` that is not an object of lists, spoil the envelope
(``invalid_envelope``); a bad *value* is the element's own, dead-lettered with its index.  Only
the usual case decodes to columns (float features, no probabilities, no task); anything else is
read element by element as the equivalent row envelope.

>>> import orjson
>>> doc = {"schema_version": 1, "model_id": "m", "columns": {
...     "request_id": ["r1", "r2"], "model_version": "v1", "event_time": [5.0, 6.0],
...     "features": {"x": [0.5, 1.5]}, "prediction": [1, 0]}}
>>> found = from_columns(doc, "inference")
>>> type(found).__name__, found[1].features, found[1].model_version
('EventColumns', {'x': 1.5}, 'v1')
>>> doc["columns"]["features"] = {"x": [0.5, "high"]}  # a bad value: rows, to refuse it alone
>>> [e["features"] for e in from_columns(doc, "inference")["events"]]
[{'x': 0.5}, {'x': 'high'}]
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from itertools import chain, repeat
from typing import Any

import numpy as np

from contracts.columns import EventColumns
from contracts.events import InferenceEvent, InvalidEvent

#: the columns of an inference the fast path reads (anything else: rows)
_PLAIN = frozenset(
    {"request_id", "model_version", "event_time", "features", "prediction", "score", "latency_ms"}
)
_OBJECTS = ("features", "probabilities")  # objects of lists, one per name
_STR = {str}
_FLOAT = {float}
_NUMBER = {float, int}
_OPTIONAL = {float, int, type(None)}
_PREDICTION = {str, int, bool, float}
_DICT = {dict}
#: an element with any of these is not the usual one (see :func:`~contracts.events.plain_fields`)
_NOT_PLAIN = frozenset({"probabilities", "task", "model_id", "schema_version"})


def from_columns(obj: dict[str, Any], kind: str, max_events: int = 10_000) -> Any:
    """A checked columnar envelope as :class:`EventColumns` (the usual inference envelope) or
    as the equivalent row envelope (a dict with ``events``), for the row path to read.

    Raises :class:`InvalidEvent` (``invalid_envelope``) if its columns do not line up."""
    columns = obj["columns"]
    if not isinstance(columns, dict):
        raise InvalidEvent("invalid_envelope", "'columns' must be an object of lists")
    ids = columns.get("request_id")
    if not isinstance(ids, list) or not ids:
        raise InvalidEvent("invalid_envelope", "'columns' needs a non-empty 'request_id' list")
    n = len(ids)
    if n > max_events:
        raise InvalidEvent("invalid_envelope", f"at most {max_events} events per envelope")
    for name, values in columns.items():
        if name in _OBJECTS:
            if not isinstance(values, dict) or not all(map(_is_list, values.values())):
                raise InvalidEvent(
                    "invalid_envelope", f"column {name!r} must be an object of lists"
                )
            lists = list(values.values())
        else:
            lists = [values] if isinstance(values, list) else []  # else one value for all
        for value in lists:
            if len(value) != n:
                raise InvalidEvent(
                    "invalid_envelope",
                    f"column {name!r} has {len(value)} values for {n} request ids",
                )
    if kind == "inference":
        fast = _plain_columns(obj["model_id"], obj["schema_version"], columns, n)
        if fast is not None:
            return fast
    return {**obj, "events": _rows(columns, n)}


def _is_list(value: Any) -> bool:
    return isinstance(value, list)


def _rows(columns: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """The columns as row elements: a field absent where its value is null, ``features`` an
    object in every element (empty where every value is null), ``probabilities`` absent where
    every value is null."""
    rows: list[dict[str, Any]] = [{} for _ in range(n)]
    for name, values in columns.items():
        if name in _OBJECTS:
            if name == "features":
                for row in rows:
                    row["features"] = {}
            for key, column in values.items():
                for row, value in zip(rows, column, strict=True):
                    if value is not None:
                        row.setdefault(name, {})[key] = value
            continue
        column = values if isinstance(values, list) else [values] * n
        for row, value in zip(rows, column, strict=True):
            if value is not None:
                row[name] = value
    return rows


def _plain_columns(
    model_id: str, schema_version: int, columns: dict[str, Any], n: int
) -> EventColumns | None:
    """The usual envelope's columns, checked at once (what :func:`plain_inference` checks of
    each element); None for anything else."""
    features = columns.get("features")
    if not _PLAIN.issuperset(columns) or not isinstance(features, dict) or not features:
        return None
    versions = columns.get("model_version")
    values = list(chain.from_iterable(features.values()))  # feature by feature
    return _checked(
        model_id,
        schema_version,
        tuple(features),
        values,
        by_event=False,
        ids=columns["request_id"],
        versions=[versions] * n if isinstance(versions, str) else versions,
        times=columns.get("event_time"),
        predictions=columns.get("prediction"),
        scores=columns.get("score", [None] * n),
        latencies=columns.get("latency_ms", [None] * n),
    )


def _checked(
    model_id: str,
    schema_version: int,
    feature_names: tuple[str, ...],
    values: list[Any],
    *,
    by_event: bool,
    ids: list[Any],
    versions: Any,
    times: Any,
    predictions: Any,
    scores: Any,
    latencies: Any,
) -> EventColumns | None:
    """What :func:`plain_inference` checks of each element, checked over columns (a list per
    field, a value per event; anything else is not the usual case): the events as
    :class:`EventColumns`, or None.  ``values``: every feature value, event by event
    (``by_event``, a row envelope's) or feature by feature (a columnar envelope's)."""
    n = len(ids)
    if not (
        isinstance(versions, list)
        and isinstance(times, list)
        and isinstance(predictions, list)
        and isinstance(scores, list)
        and isinstance(latencies, list)
        and set(map(type, ids)) == _STR
        and set(map(type, versions)) == _STR
        and all(map(str.strip, ids))
        and all(map(str.strip, versions))
        and set(map(type, times)) <= _NUMBER
        and (predicted := set(map(type, predictions))) <= _PREDICTION
        and set(map(type, scores)) <= _OPTIONAL
        and set(map(type, latencies)) <= _OPTIONAL
        and set(map(type, values)) == _FLOAT
    ):
        return None
    width = len(feature_names)
    matrix = np.fromiter(values, dtype=np.float64, count=n * width)
    matrix = matrix.reshape(n, width) if by_event else matrix.reshape(width, n).T
    times = [float(t) for t in times] if int in set(map(type, times)) else times
    scores = _floats(scores)
    latencies = _floats(latencies)
    given_scores = [x for x in scores if x is not None] if None in scores else scores
    given_latencies = [x for x in latencies if x is not None] if None in latencies else latencies
    floats = [p for p in predictions if type(p) is float] if float in predicted else []
    if (
        not np.isfinite(matrix).all()
        # one sum is finite only if every term is (a finite overflow goes the long way)
        or not math.isfinite(sum(times) + sum(floats) + sum(given_scores) + sum(given_latencies))
        or min(times) < 0
        or (given_latencies and min(given_latencies) < 0)
    ):
        return None  # the row path names the value and refuses its element alone
    return EventColumns(
        model_id,
        schema_version,
        None,
        ids,
        versions,
        times,
        feature_names,
        matrix,
        predictions,
        scores,
        latencies,
    )


def columns_from_rows(elements: list, model_id: str, schema_version: int) -> EventColumns | None:
    """A row envelope's elements as columns, when every one is the usual element
    (:func:`~contracts.events.plain_fields`) and all have the same features in the same order:
    the same events as decoding each element, without an event object each.  None otherwise
    (the elements are then read one by one, and a bad one refused alone).  The elements are
    checked field by field, as a columnar envelope's columns are, not element by element.

    >>> rows = [{"request_id": f"r{i}", "model_version": "v1", "event_time": 5.0 + i,
    ...          "features": {"x": 0.5 * i, "y": 1.0}, "prediction": 1} for i in range(3)]
    >>> found = columns_from_rows(rows, "m", 1)
    >>> found.matrix.tolist(), found[2].features
    ([[0.0, 1.0], [0.5, 1.0], [1.0, 1.0]], {'x': 1.0, 'y': 1.0})
    >>> rows[1]["features"] = {"y": 1.0, "x": 0.5}  # another order: one by one
    >>> columns_from_rows(rows, "m", 1) is None
    True
    """
    if set(map(type, elements)) != _DICT or not _NOT_PLAIN.isdisjoint(set().union(*elements)):
        return None
    features = list(map(dict.get, elements, repeat("features")))
    if set(map(type, features)) != _DICT:
        return None
    names = list(features[0])
    if not names or not all(map(names.__eq__, map(list, features))):
        return None

    def column(name: str) -> list[Any]:
        return list(map(dict.get, elements, repeat(name)))

    return _checked(
        model_id,
        schema_version,
        tuple(names),
        list(chain.from_iterable(map(dict.values, features))),
        by_event=True,
        ids=column("request_id"),
        versions=column("model_version"),
        times=column("event_time"),
        predictions=column("prediction"),
        scores=column("score"),
        latencies=column("latency_ms"),
    )


def _floats(values: list) -> list:
    if int not in set(map(type, values)):
        return values
    return [None if x is None else float(x) for x in values]


def encode_columns(events: Sequence[InferenceEvent]) -> bytes:
    """Inference events of one model as a columnar envelope (the producer helper's
    ``send_inference_columns``).  Every event must have the same feature names, in order."""
    if not events:
        raise ValueError("an envelope needs at least one event")
    first = events[0]
    names = list(first.features)
    if any(e.model_id != first.model_id for e in events):
        raise ValueError("an envelope carries the events of one model")
    if any(list(e.features) != names for e in events):
        raise ValueError("a columnar envelope's events must have the same features, in order")
    columns: dict[str, Any] = {
        "request_id": [e.request_id for e in events],
        "model_version": [e.model_version for e in events],
        "event_time": [e.event_time for e in events],
        "features": {name: [e.features[name] for e in events] for name in names},
        "prediction": [e.prediction for e in events],
    }
    for name in ("score", "latency_ms", "probabilities", "task"):
        values = [getattr(e, name) for e in events]
        if any(v is not None for v in values):
            columns[name] = values
    probabilities = columns.pop("probabilities", None)
    if probabilities is not None:
        classes = list(dict.fromkeys(c for p in probabilities if p for c in p))
        columns["probabilities"] = {
            c: [None if p is None else p.get(c) for p in probabilities] for c in classes
        }
    doc = {"schema_version": first.schema_version, "model_id": first.model_id, "columns": columns}
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
