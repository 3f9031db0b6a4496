"""Columnar envelopes (contracts/columnar.py) decode to exactly the events, and refuse exactly
the elements, that the same events sent as a row envelope do."""

from __future__ import annotations

import random

import numpy as np
import orjson
import pytest

from contracts.columnar import encode_columns
from contracts.columns import EventColumns, concat
from contracts.envelopes import decode_message
from contracts.events import InferenceEvent, InvalidEvent, inference_from_object, plain_fields

BAD_VALUES = [
    ("features", 3),  # an integer feature: accepted, as a float
    ("features", "high"),
    ("features", True),
    ("features", 1e308),  # finite, though a sum of two is not
    ("request_id", ""),
    ("request_id", "  "),
    ("request_id", 5),
    ("event_time", -1.0),
    ("event_time", 7),
    ("latency_ms", -2.0),
    ("latency_ms", 4),
    ("score", "x"),
    ("score", 1),
    ("prediction", 1.5),
    ("prediction", [1]),
    ("prediction", None),
    ("model_version", ""),
]


def _elements(rng: random.Random, n: int, mutate: int) -> list[dict]:
    rows = []
    for i in range(n):
        row = {
            "request_id": f"r{i}",
            "model_version": rng.choice(["v1", "v1", "v2"]),
            "event_time": 1000.0 + i,
            "features": {"a": rng.gauss(0, 1), "b": rng.gauss(5, 2)},
            "prediction": rng.choice([0, 1, "1", True]),
            "score": rng.random() if i % 7 else None,
            "latency_ms": rng.uniform(1, 9) if i % 5 else None,
        }
        rows.append(row)
    for _ in range(mutate):
        row = rng.choice(rows)
        field, value = rng.choice(BAD_VALUES)
        if field == "features":
            row["features"]["b"] = value
        else:
            row[field] = value
    return rows


def _columns(rows: list[dict]) -> dict:
    names = ["request_id", "model_version", "event_time", "prediction", "score", "latency_ms"]
    columns: dict = {name: [row.get(name) for row in rows] for name in names}
    columns["features"] = {k: [row["features"].get(k) for row in rows] for k in ("a", "b")}
    return columns


def _both(rows: list[dict], **extra) -> tuple:
    head = {"schema_version": 1, "model_id": "m"}
    by_rows = decode_message(orjson.dumps({**head, "events": rows}), "inference")
    columns = {**_columns(rows), **extra}
    by_columns = decode_message(orjson.dumps({**head, "columns": columns}), "inference")
    return by_rows, by_columns


@pytest.mark.parametrize("seed", range(40))
def test_columns_decode_to_the_events_and_refusals_of_the_same_rows(seed):
    rng = random.Random(seed)
    rows = _elements(rng, rng.randint(1, 60), mutate=seed % 4)
    by_rows, by_columns = _both(rows)
    assert list(by_columns.events) == list(by_rows.events)
    assert [(i, e.reason) for i, _, e in by_columns.rejected] == [
        (i, e.reason) for i, _, e in by_rows.rejected
    ]
    assert by_columns.is_envelope
    if seed % 4 == 0:  # nothing wrong: the fast path, columns kept
        assert isinstance(by_columns.events, EventColumns)


@pytest.mark.parametrize("seed", range(40))
def test_usual_row_envelopes_decode_to_columns_of_the_same_events(seed):
    """A row envelope whose elements are all the usual kind, with one feature layout, decodes
    straight to columns: the events each element decodes to on its own.  Anything else is read
    element by element (and a bad element refused alone, as the test above checks)."""
    rng = random.Random(seed)
    rows = _elements(rng, rng.randint(1, 60), mutate=seed % 3)
    if seed % 5 == 4 and len(rows) > 1:  # one element with its features in another order
        rows[-1]["features"] = dict(reversed(list(rows[-1]["features"].items())))
    head = {"schema_version": 1, "model_id": "m"}
    decoded = decode_message(orjson.dumps({**head, "events": rows}), "inference")
    one_by_one, refused = [], []
    for i, row in enumerate(rows):
        try:
            one_by_one.append(inference_from_object(row, ("m", 1)))
        except InvalidEvent as exc:
            refused.append((i, exc.reason))
    assert list(decoded.events) == one_by_one
    assert [(i, e.reason) for i, _, e in decoded.rejected] == refused
    usual = all(plain_fields(row) is not None for row in rows)
    same_layout = len({tuple(row["features"]) for row in rows}) == 1
    assert isinstance(decoded.events, EventColumns) == (usual and same_layout)


def test_a_broadcast_version_and_probabilities_and_tasks_decode_as_rows_do():
    rows = _elements(random.Random(1), 5, 0)
    for row in rows:
        row["model_version"] = "v9"
    by_rows, by_columns = _both(rows, model_version="v9")
    assert list(by_columns.events) == list(by_rows.events)
    probabilities = {"0": [0.2, 0.3, 0.4, 0.5, 0.6], "1": [0.8, 0.7, 0.6, 0.5, 0.4]}
    _, with_probabilities = _both(rows, probabilities=probabilities, task="binary")
    assert with_probabilities.events[2].probabilities == {"0": 0.4, "1": 0.6}
    assert with_probabilities.events[2].task == "binary"


@pytest.mark.parametrize(
    ("columns", "words"),
    [
        ([1, 2], "object of lists"),
        ({"event_time": [1.0]}, "'request_id' list"),
        ({"request_id": ["a", "b"], "event_time": [1.0]}, "'event_time' has 1 values for 2"),
        ({"request_id": ["a"], "features": [1.0]}, "'features' must be an object"),
        ({"request_id": ["a"], "features": {"x": 1.0}}, "'features' must be an object of lists"),
        ({"request_id": ["a"] * 10_001}, "at most 10000"),
    ],
)
def test_columns_that_do_not_line_up_spoil_the_envelope(columns, words):
    raw = orjson.dumps({"schema_version": 1, "model_id": "m", "columns": columns})
    with pytest.raises(InvalidEvent) as caught:
        decode_message(raw, "inference")
    assert caught.value.reason == "invalid_envelope"
    assert words in caught.value.detail


def test_the_producer_encoding_round_trips_and_blocks_concatenate():
    events = [
        InferenceEvent(
            "m", "v1", f"r{i}", 5.0 + i, {"x": i / 3, "y": -float(i)}, i % 2, 0.5, None, 2.0
        )
        for i in range(6)
    ]
    first = decode_message(encode_columns(events[:4]), "inference").events
    second = decode_message(encode_columns(events[4:]), "inference").events
    assert list(first) == events[:4]
    joined = concat([first, second])
    assert isinstance(joined, EventColumns) and list(joined) == events
    assert np.array_equal(joined.matrix[:, 1], [-float(i) for i in range(6)])
    other = EventColumns.concat([first, first[:1]])
    assert other is not None and len(other) == 5
    with pytest.raises(ValueError, match="same features"):
        encode_columns([events[0], InferenceEvent("m", "v1", "z", 1.0, {"y": 1.0}, 1)])


def test_label_columns_are_read_as_the_rows_they_stand_for():
    columns = {"request_id": ["a", "b", "c"], "label": [1, None, "x"], "event_time": 5.0}
    raw = orjson.dumps({"schema_version": 1, "model_id": "m", "columns": columns})
    decoded = decode_message(raw, "label")
    assert [(e.request_id, e.label, e.event_time) for e in decoded.events] == [
        ("a", 1, 5.0),
        ("c", "x", 5.0),
    ]
    assert [(i, e.reason) for i, _, e in decoded.rejected] == [(1, "missing_field")]


def test_null_values_mean_absent_and_features_stay_an_object():
    columns = {
        "request_id": ["a", "b"],
        "model_version": "v1",
        "event_time": [1.0, 2.0],
        "features": {"x": [None, 1.0]},
        "prediction": [1, 0],
        "probabilities": {"0": [None, 0.4], "1": [None, 0.6]},
    }
    raw = orjson.dumps({"schema_version": 1, "model_id": "m", "columns": columns})
    first, second = decode_message(raw, "inference").events
    assert (first.features, first.probabilities) == ({}, None)
    assert (second.features, second.probabilities) == ({"x": 1.0}, {"0": 0.4, "1": 0.6})


def test_prediction_fields_follow_the_stored_prediction_order():
    from contracts.columns import PREDICTION_FIELD_NAMES
    from streams.join import StoredPrediction

    assert StoredPrediction._fields[: len(PREDICTION_FIELD_NAMES)] == PREDICTION_FIELD_NAMES
