"""Strict decoding: every kind of malformed event gets its reason code."""

from __future__ import annotations

import json
import math
from unittest.mock import patch

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from contracts.envelopes import decode_message
from contracts.events import (
    InferenceEvent,
    InvalidEvent,
    LabelEvent,
    decode_inference,
    decode_label,
    inference_from_object,
    plain_inference,
)

GOOD = {
    "schema_version": 1,
    "model_id": "churn",
    "model_version": "v1",
    "request_id": "r-1",
    "event_time": 1_700_000_000.5,
    "features": {"age": 41, "income": 52000.0},
    "prediction": 1,
    "score": 0.83,
    "latency_ms": 12.5,
}


def _with(**changes):
    body = dict(GOOD)
    for k, v in changes.items():
        if v is KeyError:
            body.pop(k)
        else:
            body[k] = v
    return json.dumps(body).encode()


MALFORMED = [
    (b"{not json", "invalid_json"),
    (b"\xff\xfe\x00", "invalid_json"),
    (b"[1, 2, 3]", "not_an_object"),
    (b'"just a string"', "not_an_object"),
    (_with(model_id=KeyError), "missing_field"),
    (_with(features=KeyError), "missing_field"),
    (_with(schema_version=KeyError), "missing_field"),
    (_with(event_time=None), "missing_field"),
    (_with(features=[1, 2]), "wrong_type"),
    (_with(features={"age": "old"}), "wrong_type"),
    (_with(features={"age": True}), "wrong_type"),
    (_with(score="high"), "wrong_type"),
    (_with(model_id=7), "wrong_type"),
    (_with(schema_version="1"), "wrong_type"),
    (_with(prediction=[1]), "wrong_type"),
    (_with(schema_version=2), "unknown_schema_version"),
    (_with(schema_version=0), "unknown_schema_version"),
    (_with().replace(b'"score": 0.83', b'"score": NaN'), "non_finite_number"),
    (_with().replace(b'"score": 0.83', b'"score": Infinity'), "non_finite_number"),
    (_with().replace(b'"age": 41', b'"age": -Infinity'), "non_finite_number"),
    (_with().replace(b'"age": 41', b'"age": 1e999'), "non_finite_number"),
    (_with(latency_ms=-3), "invalid_value"),
    (_with(model_id="  "), "invalid_value"),
    (_with(model_id="a{b}"), "invalid_value"),
    (_with(event_time=-1), "invalid_value"),
]


def test_a_good_event_round_trips():
    event = decode_inference(_with())
    assert event.features == {"age": 41.0, "income": 52000.0}
    assert decode_inference(event.to_json()) == event
    assert isinstance(event, InferenceEvent)


@pytest.mark.parametrize(
    ("raw", "reason"), MALFORMED, ids=[f"{r}-{i}" for i, (_, r) in enumerate(MALFORMED)]
)
def test_malformed_inference_has_its_reason(raw, reason):
    with pytest.raises(InvalidEvent) as info:
        decode_inference(raw)
    assert info.value.reason == reason
    assert info.value.detail


def test_confidence_falls_back_to_the_top_probability():
    event = decode_inference(_with(score=None, probabilities={"a": 0.2, "b": 0.7, "c": 0.1}))
    assert event.confidence == 0.7


def test_label_events_decode_and_reject():
    label = LabelEvent("churn", "r-1", label="yes", event_time=5.0)
    assert decode_label(label.to_json()) == label
    with pytest.raises(InvalidEvent, match="missing_field"):
        decode_label(b'{"schema_version": 1, "model_id": "m", "request_id": "r", "event_time": 1}')


def test_rollout_alarms_from_the_learner_round_trip():
    from contracts.alarms import Alarm, decode_alarm, encode_alarm

    alarm = Alarm("m", "v2", "rollout", "bake_window", "bake", 0.5, 0.1, {}, "critical", 1.0, 200)
    assert decode_alarm(encode_alarm(alarm, "/learner")) == alarm
    assert alarm.dedup_key == "m/rollout:bake_window/bake"


def test_the_task_field_is_optional_and_validated():
    from contracts.events import InferenceEvent, InvalidEvent, decode_inference

    event = InferenceEvent("m", "v1", "r1", 1.0, {"x": 1.0}, 2.75, task="regression")
    assert decode_inference(event.to_json()) == event
    plain = InferenceEvent("m", "v1", "r1", 1.0, {"x": 1.0}, "1")
    assert b"task" not in plain.to_json() and decode_inference(plain.to_json()).task is None
    bad = event.to_json().replace(b'"regression"', b'"ranking"')
    with pytest.raises(InvalidEvent, match="'task' must be one of"):
        decode_inference(bad)
    text = InferenceEvent("m", "v1", "r1", 1.0, {"x": 1.0}, "high", task="regression")
    with pytest.raises(InvalidEvent, match="'prediction' must be a number"):
        decode_inference(text.to_json())


_ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", " ", "v1", "r7", "\t"]),
    st.dictionaries(st.sampled_from(["x", "y"]), st.floats(allow_infinity=True), max_size=2),
    st.lists(st.integers(), max_size=1),
)


_FIELDS = ["request_id", "model_version", "event_time", "features", "prediction", "score",
           "latency_ms", "task", "probabilities", "model_id", "schema_version"]  # fmt: skip
_FIELD_VALUES = st.one_of(
    _ANY_VALUE,
    st.sampled_from(["m", "other", "regression", "binary", 1, 2, 1e308, -1.0, 1.7e9]),
    st.dictionaries(
        st.sampled_from(["a", "b"]),
        st.one_of(st.floats(-1e308, 1e308), st.integers(-5, 5), _ANY_VALUE),
        max_size=3,
    ),
)


@st.composite
def _elements(draw):
    """A valid element with a few fields changed or removed."""
    element = dict(_BASE)
    element.update(draw(st.dictionaries(st.sampled_from(_FIELDS), _FIELD_VALUES, max_size=3)))
    for name in draw(st.lists(st.sampled_from(_FIELDS), max_size=2)):
        element.pop(name, None)
    return element


_BASE = {"request_id": "r1", "model_version": "v1", "event_time": 1.7e9,
         "features": {"a": 0.5, "b": 1e307}, "prediction": 1, "score": 0.9, "latency_ms": 2.0}  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(_elements())
@example({**_BASE, "features": {"a": math.inf}})
@example({**_BASE, "score": -math.inf})
@example({**_BASE, "prediction": math.nan})
@example({**_BASE, "features": {"a": 1e308, "b": 1e308}})  # finite, whose sum is not
def test_the_fast_element_check_accepts_only_what_the_full_one_accepts(element):
    """Envelopes check their usual elements in one pass (``plain_inference``): whatever it
    accepts, the full validator accepts as the same event; it may pass on anything else.  And an
    envelope decodes the same with and without the fast checks (this one, and the envelope's
    elements read straight into columns)."""
    fast = plain_inference(element, ("m", 1))
    try:
        full = inference_from_object(element, ("m", 1))
    except InvalidEvent:
        assert fast is None
    else:
        assert fast is None or fast == full
    raw = json.dumps({"schema_version": 1, "model_id": "m", "events": [element]}).encode()
    try:
        quick = decode_message(raw, "inference")
    except InvalidEvent as exc:  # NaN or Infinity in the text: the message as a whole
        assert exc.reason in ("non_finite_number", "invalid_json")
        return
    with (
        patch("contracts.envelopes.plain_inference", lambda element, given: None),
        patch("contracts.envelopes.columns_from_rows", lambda elements, *given: None),
    ):
        slow = decode_message(raw, "inference")
    assert list(quick.events) == slow.events
    assert [(i, e.reason) for i, _, e in quick.rejected] == [
        (i, e.reason) for i, _, e in slow.rejected
    ]


def test_the_fast_element_check_takes_the_usual_element():
    element = {"request_id": "r1", "model_version": "v1", "event_time": 1.7e9,
               "features": {"a": 0.5, "b": -2.0}, "prediction": "yes", "score": 0.8,
               "latency_ms": 3.0}  # fmt: skip
    assert plain_inference(element, ("m", 1)) == inference_from_object(element, ("m", 1))
    assert plain_inference({**element, "features": {"a": 1}}, ("m", 1)) is None  # an int: long way
