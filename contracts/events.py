"""Typed, versioned inference and label events, and their strict JSON decoders.

Wire format: one UTF-8 JSON object per Kafka message.  Inference events go to
``<prefix>.inferences`` and label events to ``<prefix>.labels``, both keyed by model id so that a
model's predictions and labels land on the same partition number (the topics are
co-partitioned) and therefore on the same worker.

Decoding never raises anything but :class:`InvalidEvent`, whose ``reason`` is a short stable
code (see ``REASONS``) and whose ``detail`` says what exactly was wrong; the stream workers put
both on the dead-letter record.  This module imports no Kafka or Faust code: model servers,
learners and tests use it as it is.

>>> event = InferenceEvent(model_id="churn", model_version="v1", request_id="r1",
...                        event_time=1700000000.0, features={"age": 41.0}, prediction=1,
...                        score=0.83, latency_ms=12.5)
>>> decode_inference(event.to_json()) == event
True
>>> decode_inference(b'{"schema_version": 1}')
Traceback (most recent call last):
...
contracts.events.InvalidEvent: missing_field: 'model_id' is required
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from typing import Any

import orjson

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})

REASONS = (
    "tombstone",  # a null message value (a Kafka delete marker): there is nothing to decode
    "invalid_json",  # not UTF-8 JSON at all
    "not_an_object",  # JSON, but not an object
    "missing_field",
    "wrong_type",
    "unknown_schema_version",
    "non_finite_number",  # NaN, Infinity, or a number too large for a double
    "invalid_value",  # right type, impossible value (negative latency, empty id, ...)
    "invalid_envelope",  # a batch envelope that is not one (no events list, mixed models, ...)
    "too_large",  # a message over DRIFTLINE_MAX_MESSAGE_BYTES: not parsed at all
)

# Model ids end up in Kafka keys and in Redis hash tags ({model}): no braces, no spaces.
MODEL_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,199}")

Label = int | float | str | bool
Envelope = tuple[str, int]  # (model id, schema version) that a batch envelope gives its elements
Prediction = int | float | str | bool
TASKS = ("binary", "multiclass", "regression")  # optional ``task`` of an inference event


class InvalidEvent(ValueError):
    """An event that cannot be processed, with a stable reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class InferenceEvent:
    """One prediction served by a model.

    ``score`` is the model's confidence *in the class it predicted* (not P(positive): a binary
    model predicting "0" with P(positive) = 0.2 has score 0.8), or a regressor's output.  Where
    the model gives class probabilities, prefer ``probabilities`` and leave ``score`` empty: the
    monitor then takes the top probability as the confidence.  ``task`` is optional: ``"regression"`` makes the monitor
    compare predictions and labels as numbers (absolute error, MAE, RMSE) instead of classes.
    """

    model_id: str
    model_version: str
    request_id: str
    event_time: float  # seconds since the Unix epoch
    features: dict[str, float]
    prediction: Prediction
    score: float | None = None
    probabilities: dict[str, float] | None = None
    latency_ms: float | None = None
    schema_version: int = SCHEMA_VERSION
    task: str | None = None  # one of TASKS; absent means a classifier

    @property
    def is_regression(self) -> bool:
        return self.task == "regression"

    @property
    def confidence(self) -> float | None:
        """The number the score detectors watch: ``score``, else the top class probability."""
        if self.score is not None:
            return self.score
        if self.probabilities:
            return max(self.probabilities.values())
        return None

    def to_json(self) -> bytes:
        return _dumps({k: v for k, v in asdict(self).items() if v is not None})


@dataclass(frozen=True, slots=True)
class LabelEvent:
    """The ground truth for an earlier prediction, joined to it by ``request_id``."""

    model_id: str
    request_id: str
    label: Label
    event_time: float
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> bytes:
        return _dumps(asdict(self))


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


# ---------------------------------------------------------------------------- decoding
def _reject_constant(token: str) -> float:
    raise InvalidEvent("non_finite_number", f"{token} is not a finite number")


def _load_object(raw: bytes | str | None) -> dict[str, Any]:
    """orjson first (several times faster); what it refuses goes through the standard library's
    parser, whose errors name the exact reason (NaN tokens, bad UTF-8, ...) and which also
    reads what orjson does not (integers beyond 64 bits, UTF-16): one behaviour, a fast path."""
    if raw is None:
        raise InvalidEvent("tombstone", "the message value is null (a tombstone), not an event")
    try:
        return check_object(orjson.loads(raw))
    except orjson.JSONDecodeError:
        pass
    try:
        obj = json.loads(raw, parse_constant=_reject_constant)
    except InvalidEvent:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidEvent("invalid_json", str(exc)) from None
    return check_object(obj)


def check_object(obj: Any) -> dict[str, Any]:
    """A decoded JSON value that should be an event (or envelope) object: its type and version."""
    if not isinstance(obj, dict):
        raise InvalidEvent("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    version = obj.get("schema_version", None)
    if version is None:
        pass  # reported as a missing field below, after the model id
    elif type(version) is not int:
        raise InvalidEvent("wrong_type", "'schema_version' must be an integer")
    elif version not in SUPPORTED_SCHEMA_VERSIONS:
        raise InvalidEvent(
            "unknown_schema_version",
            f"schema_version {version} is not supported (supported: {sorted(SUPPORTED_SCHEMA_VERSIONS)})",
        )
    return obj


def load_message(raw: bytes | str | None) -> dict[str, Any]:
    """One Kafka message value as a checked JSON object (an event or an envelope)."""
    return _load_object(raw)


def _required(obj: dict[str, Any], name: str) -> Any:
    if name not in obj or obj[name] is None:
        raise InvalidEvent("missing_field", f"{name!r} is required")
    return obj[name]


def _text(obj: dict[str, Any], name: str) -> str:
    value = _required(obj, name)
    if not isinstance(value, str):
        raise InvalidEvent("wrong_type", f"{name!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidEvent("invalid_value", f"{name!r} must not be empty")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent("wrong_type", f"{name!r} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidEvent("non_finite_number", f"{name!r} is not finite")
    return number


def _optional_number(obj: dict[str, Any], name: str) -> float | None:
    return None if obj.get(name) is None else _number(obj[name], name)


_NUMBER_TYPES, _FLOAT_TYPE, _STR_TYPE = (
    frozenset({float, int}),
    frozenset({float}),
    frozenset({str}),
)


def _number_map(value: Any, name: str) -> dict[str, float]:
    if not isinstance(value, dict):
        raise InvalidEvent("wrong_type", f"{name!r} must be an object of name -> number")
    kinds = set(map(type, value.values()))
    if kinds <= _NUMBER_TYPES and set(map(type, value)) <= _STR_TYPE:  # the usual case, fast
        numbers = value if kinds <= _FLOAT_TYPE else {k: float(v) for k, v in value.items()}
        if all(map(math.isfinite, numbers.values())):
            return numbers
    return {str(k): _number(v, f"{name}.{k}") for k, v in value.items()}


def _scalar(value: Any, name: str) -> Prediction:
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return _number(value, name)
    raise InvalidEvent("wrong_type", f"{name!r} must be a number, string or boolean")


def _common(obj: dict[str, Any], envelope: Envelope | None) -> tuple[str, str, float, int]:
    if envelope is not None:
        model_id, version = envelope
        return model_id, _text(obj, "request_id"), _event_time(obj), version
    model_id = _text(obj, "model_id")
    if not MODEL_ID_PATTERN.fullmatch(model_id):
        raise InvalidEvent(
            "invalid_value", "'model_id' must be 1-200 of A-Z a-z 0-9 . _ : - (no spaces or braces)"
        )
    request_id = _text(obj, "request_id")
    version = _required(obj, "schema_version")
    return model_id, request_id, _event_time(obj), version


def _event_time(obj: dict[str, Any]) -> float:
    event_time = _number(_required(obj, "event_time"), "event_time")
    if event_time < 0:
        raise InvalidEvent("invalid_value", "'event_time' must be seconds since the Unix epoch")
    return event_time


def decode_inference(raw: bytes | str | None) -> InferenceEvent:
    """Parse and validate one inference event; raise :class:`InvalidEvent` otherwise."""
    return inference_from_object(_load_object(raw))


def inference_from_object(obj: dict[str, Any], envelope: Envelope | None = None) -> InferenceEvent:
    """Validate a decoded JSON object as an inference event.

    ``envelope``: the (model id, schema version) of the batch envelope the object came in,
    already validated, for an element that leaves both out."""
    model_id, request_id, event_time, version = _common(obj, envelope)
    features = _number_map(_required(obj, "features"), "features")
    probabilities = None
    if obj.get("probabilities") is not None:
        probabilities = _number_map(obj["probabilities"], "probabilities")
    latency = _optional_number(obj, "latency_ms")
    if latency is not None and latency < 0:
        raise InvalidEvent("invalid_value", "'latency_ms' must be >= 0")
    task = obj.get("task")
    if task is not None and task not in TASKS:
        raise InvalidEvent("invalid_value", f"'task' must be one of {TASKS}, got {task!r}")
    prediction = _scalar(_required(obj, "prediction"), "prediction")
    if task == "regression":
        prediction = _number(prediction, "prediction")
    return InferenceEvent(
        model_id=model_id,
        model_version=_text(obj, "model_version"),
        request_id=request_id,
        event_time=event_time,
        features=features,
        prediction=prediction,
        score=_optional_number(obj, "score"),
        probabilities=probabilities,
        latency_ms=latency,
        schema_version=version,
        task=task,
    )


_PLAIN_NUMBER = frozenset({float, int})
_OPTIONAL_NUMBER = frozenset({float, int, type(None)})
_PLAIN_PREDICTION = frozenset({str, int, bool, float})


def plain_inference(obj: dict[str, Any], envelope: Envelope) -> InferenceEvent | None:
    """The usual envelope element (no ``task``, no ``probabilities``, float features), checked
    in one pass; ``None`` for anything else, which :func:`inference_from_object` then accepts or
    refuses with its reason.  For a decoded JSON element it accepts only what that function
    accepts, and builds the same event (``tests/unit/test_events.py`` holds it to that).

    >>> plain_inference({"request_id": "r1", "model_version": "v1", "event_time": 5.0,
    ...                  "features": {"x": 1.5}, "prediction": 1}, ("m", 1)).features
    {'x': 1.5}
    >>> plain_inference({"request_id": " ", "model_version": "v1", "event_time": 5.0,
    ...                  "features": {"x": 1.5}, "prediction": 1}, ("m", 1)) is None
    True
    """
    fields = plain_fields(obj)
    if fields is None:
        return None
    version, request_id, event_time, features, prediction, score, latency = fields
    return InferenceEvent(
        envelope[0],
        version,
        request_id,
        event_time,
        features,
        prediction,
        score,
        None,
        latency,
        envelope[1],
        None,
    )


def plain_fields(obj: dict[str, Any]) -> tuple | None:
    """:func:`plain_inference`'s check, and the element's fields as an event holds them:
    ``(model_version, request_id, event_time, features, prediction, score, latency_ms)``
    (numbers as floats); ``None`` where the element is not the usual one."""
    get = obj.get
    request_id, version, event_time = get("request_id"), get("model_version"), get("event_time")
    features, prediction = get("features"), get("prediction")
    score, latency = get("score"), get("latency_ms")
    if (
        type(request_id) is not str
        or type(version) is not str
        or type(event_time) not in _PLAIN_NUMBER
        or type(features) is not dict
        or type(prediction) not in _PLAIN_PREDICTION
        or type(score) not in _OPTIONAL_NUMBER
        or type(latency) not in _OPTIONAL_NUMBER
        or "probabilities" in obj
        or "task" in obj
        or "model_id" in obj  # the envelope's, or a mismatch to report
        or "schema_version" in obj
        or not request_id
        or request_id.isspace()
        or not version
        or version.isspace()
        or not event_time >= 0  # also refuses NaN
        or (latency is not None and not latency >= 0)
        or not set(map(type, features.values())) <= _FLOAT_TYPE
        # one sum is finite only if every term is (a finite overflow goes the long way)
        or not math.isfinite(
            sum(features.values())
            + event_time
            + (score or 0.0)
            + (latency or 0.0)
            + (prediction if type(prediction) is float else 0.0)
        )
    ):
        return None
    return (
        version,
        request_id,
        float(event_time),
        features,
        prediction,
        None if score is None else float(score),
        None if latency is None else float(latency),
    )


def decode_label(raw: bytes | str | None) -> LabelEvent:
    """Parse and validate one label event; raise :class:`InvalidEvent` otherwise."""
    return label_from_object(_load_object(raw))


def label_from_object(obj: dict[str, Any], envelope: Envelope | None = None) -> LabelEvent:
    """Validate a decoded JSON object as a label event (``envelope`` as for inferences)."""
    model_id, request_id, event_time, version = _common(obj, envelope)
    return LabelEvent(
        model_id=model_id,
        request_id=request_id,
        label=_scalar(_required(obj, "label"), "label"),
        event_time=event_time,
        schema_version=version,
    )


def normalise_label(value: Any) -> str:
    """Compare predictions and labels by value: True == 1 == 1.0 == "1"."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
