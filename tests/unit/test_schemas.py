"""The JSON Schema files non-Python producers validate against agree with the decoders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from contracts.alarms import Alarm, Resolution, encode_alarm, encode_resolution
from contracts.columnar import encode_columns
from contracts.envelopes import decode_message, encode_envelope
from contracts.events import (
    InferenceEvent,
    InvalidEvent,
    LabelEvent,
    decode_inference,
    decode_label,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "contracts" / "schemas"


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


GOOD = InferenceEvent(
    "churn", "v1", "r1", 1.7e9, {"age": 41.0, "n": 3}, 1, score=0.8, latency_ms=12.5
)
BAD_INFERENCES = {
    "missing prediction": {
        k: v for k, v in json.loads(GOOD.to_json()).items() if k != "prediction"
    },
    "boolean feature": {**json.loads(GOOD.to_json()), "features": {"age": True}},
    "negative latency": {**json.loads(GOOD.to_json()), "latency_ms": -1},
    "unknown version": {**json.loads(GOOD.to_json()), "schema_version": 2},
    "model id with a space": {**json.loads(GOOD.to_json()), "model_id": "churn model"},
    "blank request id": {**json.loads(GOOD.to_json()), "request_id": "  "},
    "text regression output": {
        **json.loads(GOOD.to_json()),
        "task": "regression",
        "prediction": "high",
    },
}


def test_valid_events_pass_both_the_schema_and_the_decoder():
    inference, label = _validator("inference-event"), _validator("label-event")
    regression = InferenceEvent("m", "v2", "r2", 5.0, {"x": 1.0}, 3.5, task="regression")
    for event in (GOOD, regression):
        inference.validate(json.loads(event.to_json()))
        assert decode_inference(event.to_json()) == event
    answer = LabelEvent("churn", "r1", 0, 1.7e9 + 60)
    label.validate(json.loads(answer.to_json()))
    assert decode_label(answer.to_json()) == answer


@pytest.mark.parametrize("case", sorted(BAD_INFERENCES))
def test_what_the_schema_refuses_the_decoder_dead_letters(case):
    doc = BAD_INFERENCES[case]
    assert not _validator("inference-event").is_valid(doc)
    with pytest.raises(InvalidEvent):
        decode_inference(json.dumps(doc).encode())


def test_envelopes_match_their_schema():
    envelope = json.loads(encode_envelope([GOOD, GOOD]))
    _validator("envelope").validate(envelope)
    assert len(decode_message(json.dumps(envelope).encode(), "inference").events) == 2
    empty = {**envelope, "events": []}
    assert not _validator("envelope").is_valid(empty)
    with pytest.raises(InvalidEvent):
        decode_message(json.dumps(empty).encode(), "inference")


def test_columnar_envelopes_match_their_schema():
    envelope = json.loads(encode_columns([GOOD, GOOD]))
    _validator("columnar-envelope").validate(envelope)
    assert list(decode_message(json.dumps(envelope).encode(), "inference").events) == [GOOD] * 2
    for broken in (
        {**envelope["columns"], "request_id": []},
        {**envelope["columns"], "features": [1.0, 2.0]},
    ):
        doc = {**envelope, "columns": broken}
        assert not _validator("columnar-envelope").is_valid(doc)
        with pytest.raises(InvalidEvent):
            decode_message(json.dumps(doc).encode(), "inference")


def test_both_alarm_records_match_the_alarm_schema():
    alarm = Alarm(
        "churn", "v1", "error", "error", "cusum", 1.3, 1.0, {"values_seen": 90}, "critical",
        1.7e9, 90, incident="i-1",
    )  # fmt: skip
    validator = _validator("alarm")
    opened = json.loads(encode_alarm(alarm, "/w", "a-1"))
    validator.validate(opened)
    resolved = json.loads(encode_resolution(Resolution(alarm, 1.7e9 + 700, 2, "back"), "/w"))
    validator.validate(resolved)
    resolved["data"]["status"] = "firing"
    assert not validator.is_valid(resolved)
