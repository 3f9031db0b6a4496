"""Batch envelopes: one Kafka message carrying many events of one model.

High-volume model servers log in batches; one message per prediction makes the per-message cost
of the broker and the stream framework the bottleneck.  An envelope is

.. code-block:: json

    {"schema_version": 1, "model_id": "churn", "events": [{...}, {...}]}

on the same topic as single events (``<prefix>.inferences`` or ``<prefix>.labels``), keyed by the
model id.  Each element is an ordinary event object; it may leave out ``schema_version`` and
``model_id`` (the envelope's apply) and, if it has them, they must match.  At most
:data:`MAX_EVENTS` elements.

A bad envelope (no ``events`` list, no model id, too many elements) is one dead letter with reason
``invalid_envelope``.  A bad *element* does not spoil the others: it is dead-lettered on its own
(its JSON, the reason, and its index in the envelope), and the rest are processed, so counts
still reconcile per event: produced = processed + dead-lettered.

>>> from contracts.events import InferenceEvent
>>> events = [InferenceEvent("m", "v1", f"r{i}", 1.0 + i, {"x": 1.0}, 1) for i in range(3)]
>>> batch = decode_message(encode_envelope(events), "inference")
>>> len(batch.events), batch.rejected, batch.is_envelope
(3, [], True)
>>> broken = b'{"schema_version": 1, "model_id": "m", "events": [{"request_id": "r9"}]}'
>>> [(i, e.reason) for i, _, e in decode_message(broken, "inference").rejected]
[(0, 'missing_field')]
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from contracts.columnar import columns_from_rows, from_columns
from contracts.columns import EventColumns
from contracts.events import (
    MODEL_ID_PATTERN,
    SCHEMA_VERSION,
    InferenceEvent,
    InvalidEvent,
    LabelEvent,
    check_object,
    inference_from_object,
    label_from_object,
    load_message,
    plain_inference,
)

MAX_EVENTS = 10_000
_FROM_OBJECT = {"inference": inference_from_object, "label": label_from_object}


@dataclass
class Decoded:
    """What one Kafka message held: its valid events, and the elements refused (index, the
    element as JSON bytes, why)."""

    events: list[Any] = field(default_factory=list)
    rejected: list[tuple[int, bytes, InvalidEvent]] = field(default_factory=list)
    is_envelope: bool = False


def encode_envelope(events: Sequence[InferenceEvent | LabelEvent]) -> bytes:
    """Events of one model as one envelope (the producer helper's ``send_*_batch``)."""
    if not events:
        raise ValueError("an envelope needs at least one event")
    model_id = events[0].model_id
    if any(e.model_id != model_id for e in events):
        raise ValueError("an envelope carries the events of one model")
    if len(events) > MAX_EVENTS:
        raise ValueError(f"an envelope carries at most {MAX_EVENTS} events")
    elements = []
    for event in events:
        element = {k: v for k, v in asdict(event).items() if v is not None}
        del element["model_id"], element["schema_version"]  # the envelope's apply
        elements.append(element)
    doc = {"schema_version": SCHEMA_VERSION, "model_id": model_id, "events": elements}
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


def _check_envelope(obj: dict[str, Any]) -> None:
    model_id = obj.get("model_id")
    if not isinstance(model_id, str) or not MODEL_ID_PATTERN.fullmatch(model_id):
        raise InvalidEvent("invalid_envelope", "an envelope needs a valid 'model_id'")
    if obj.get("schema_version") is None:
        raise InvalidEvent("invalid_envelope", "an envelope needs a 'schema_version'")


def _never_plain(element: dict[str, Any], given: tuple[str, int]) -> None:
    return None


def decode_message(raw: bytes | str | None, kind: str) -> Decoded:
    """A single event or an envelope of ``kind`` ("inference" or "label").

    Raises :class:`InvalidEvent` if the message as a whole is unusable."""
    from_object = _FROM_OBJECT[kind]
    obj = load_message(raw)
    if "columns" in obj and "events" not in obj:  # columnar: as columns, or as the rows it is
        _check_envelope(obj)
        found = from_columns(obj, kind, MAX_EVENTS)
        if isinstance(found, EventColumns):
            return Decoded(found, is_envelope=True)  # type: ignore[arg-type]
        obj = found
    if "events" not in obj:
        return Decoded([from_object(obj)])
    elements = obj["events"]
    model_id = obj.get("model_id")
    if not isinstance(elements, list) or not elements:
        raise InvalidEvent("invalid_envelope", "'events' must be a non-empty list of events")
    if len(elements) > MAX_EVENTS:
        raise InvalidEvent("invalid_envelope", f"at most {MAX_EVENTS} events per envelope")
    _check_envelope(obj)
    given = (model_id, obj["schema_version"])  # checked with the envelope (load_message)
    if kind == "inference" and (found := columns_from_rows(elements, *given)) is not None:
        return Decoded(found, is_envelope=True)  # type: ignore[arg-type]
    decoded = Decoded(is_envelope=True)
    plain = plain_inference if kind == "inference" else _never_plain
    for index, element in enumerate(elements):
        if type(element) is dict and (event := plain(element, given)) is not None:
            decoded.events.append(event)  # the usual element, checked in one pass
            continue
        try:
            if (
                type(element) is dict
                and "model_id" not in element
                and "schema_version" not in element
            ):
                decoded.events.append(from_object(element, given))  # the usual element
                continue
            if not isinstance(element, dict):
                check_object(element)  # raises not_an_object
            if element.get("model_id", model_id) != model_id:
                raise InvalidEvent(
                    "invalid_envelope", f"element {index} is for model {element['model_id']!r}"
                )
            full = {**element, "model_id": model_id}
            full.setdefault("schema_version", obj["schema_version"])
            decoded.events.append(from_object(check_object(full)))
        except InvalidEvent as exc:
            text = json.dumps(element, separators=(",", ":"), default=str).encode()
            decoded.rejected.append((index, text, exc))
    return decoded
