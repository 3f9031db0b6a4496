"""Drift alarms as CloudEvents 1.0, JSON structured mode.

Each alarm is one Kafka message on ``<prefix>.alarms`` whose value is a complete CloudEvent
(``specversion``, ``id``, ``source``, ``type``, ``time``, ``datacontenttype``, ``data``), whose
key is the model id, and whose ``content-type`` header is ``application/cloudevents+json``
(the CloudEvents Kafka binding, structured mode).

Lifecycle (see :mod:`streams.lifecycle`): an alarm *opens* (``type`` ``...drift.v1``,
``data.status`` ``"firing"``); further detections on its ``data.dedup_key`` (model + signal +
detector) while it is open are repeats and are not published; it *resolves* (``type``
``...resolved.v1``, ``data.status`` ``"resolved"``) once its signal has been normal long
enough.  Alarms of one model opened close together share ``data.incident``: page per incident.

>>> alarm = Alarm(model_id="churn", model_version="v1", signal_kind="error", signal_name="error",
...               detector="adwin", statistic=0.21, threshold=0.08, window={"width": 96},
...               severity="critical", event_time=1700000000.0, index=4096)
>>> alarm.dedup_key                  # an error rate is one model version's
'churn/error:error/adwin@v1'
>>> event = to_cloudevent(alarm, source="/driftline/streams/worker-1", event_id="a1")
>>> event["type"], event["data"]["signal"]
('io.driftline.alarm.drift.v1', {'kind': 'error', 'name': 'error'})
>>> decode_alarm(encode_alarm(alarm, source="/s")) == alarm
True
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ALARM_TYPE = "io.driftline.alarm.drift.v1"
RESOLVED_TYPE = "io.driftline.alarm.resolved.v1"
SIGNAL_KINDS = (
    "feature",
    "score",
    "error",
    "system",
    "data",
    "security",
    "output",
    "performance",
    "rule",
    "rollout",  # raised by the learner: a promotion rolled back in its bake window
)
SEVERITIES = ("info", "warning", "critical")
VERSION_SCOPED_KINDS = ("score", "error", "output", "performance")  # kept per model version


@dataclass(frozen=True, slots=True)
class Alarm:
    """A detector fired on one signal of one model."""

    model_id: str
    model_version: str
    signal_kind: str  # one of SIGNAL_KINDS
    signal_name: str  # feature name, "score", "error", ... ("bake_window" for rollout)
    detector: str
    statistic: float
    threshold: float
    window: dict[str, Any]
    severity: str
    event_time: float  # event time of the value that raised the alarm
    index: int  # values the detector had seen on this signal
    detector_params: dict[str, Any] = field(default_factory=dict, compare=False)
    incident: str = ""  # alarms of one model raised close together share one incident id

    @property
    def dedup_key(self) -> str:
        """One alarm at a time per key: model + signal + detector, and for a model version's
        own signals (score, error, outputs, estimated accuracy) the version too: a new version
        that degrades is a new problem, not a repeat of its predecessor's."""
        key = f"{self.model_id}/{self.signal_kind}:{self.signal_name}/{self.detector}"
        return f"{key}@{self.model_version}" if self.signal_kind in VERSION_SCOPED_KINDS else key


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def _cloudevent(
    kind: str, event_id: str, source: str, alarm: Alarm, at: float, data: dict[str, Any]
) -> dict[str, Any]:
    """The CloudEvents 1.0 envelope every alarms-topic record shares."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": kind,
        "subject": alarm.model_id,
        "time": _rfc3339(at),
        "datacontenttype": "application/json",
        "data": data,
    }


def to_cloudevent(alarm: Alarm, source: str, event_id: str | None = None) -> dict[str, Any]:
    event_id = event_id or str(uuid.uuid4())
    return _cloudevent(
        ALARM_TYPE,
        event_id,
        source,
        alarm,
        alarm.event_time,
        {
            "model": alarm.model_id,
            "model_version": alarm.model_version,
            "signal": {"kind": alarm.signal_kind, "name": alarm.signal_name},
            "detector": alarm.detector,
            "detector_params": alarm.detector_params,
            "statistic": alarm.statistic,
            "threshold": alarm.threshold,
            "window": alarm.window,
            "severity": alarm.severity,
            "index": alarm.index,
            "event_time": alarm.event_time,
            "dedup_key": alarm.dedup_key,
            "status": "firing",
            "incident": alarm.incident,
        },
    )


def encode_alarm(alarm: Alarm, source: str, event_id: str | None = None) -> bytes:
    return json.dumps(to_cloudevent(alarm, source, event_id), separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Resolution:
    """An open alarm whose signal has been normal long enough: the end of its lifecycle."""

    alarm: Alarm  # the alarm that opened it
    resolved_at: float  # event time
    repeats: int  # detections on the same dedup key while it was open (not published)
    reason: str
    incident_open: int = 0  # alarms of its incident still open after it: 0 ends the incident

    @property
    def dedup_key(self) -> str:
        return self.alarm.dedup_key


def resolution_to_cloudevent(resolution: Resolution, source: str, event_id: str) -> dict[str, Any]:
    alarm = resolution.alarm
    return _cloudevent(
        RESOLVED_TYPE,
        event_id,
        source,
        alarm,
        resolution.resolved_at,
        {
            "model": alarm.model_id,
            "model_version": alarm.model_version,
            "signal": {"kind": alarm.signal_kind, "name": alarm.signal_name},
            "detector": alarm.detector,
            "severity": alarm.severity,
            "dedup_key": alarm.dedup_key,
            "incident": alarm.incident,
            "status": "resolved",
            "opened_at": alarm.event_time,
            "resolved_at": resolution.resolved_at,
            "repeats": resolution.repeats,
            "reason": resolution.reason,
            "incident_open": resolution.incident_open,
        },
    )


def encode_resolution(resolution: Resolution, source: str) -> bytes:
    """A resolution's CloudEvent; its id is derived from the alarm it closes (a replay gives the
    same id)."""
    event_id = str(
        uuid.uuid5(
            uuid.NAMESPACE_URL,
            f"driftline:resolved:{resolution.alarm.incident}:{resolution.dedup_key}",
        )
    )
    return json.dumps(
        resolution_to_cloudevent(resolution, source, event_id), separators=(",", ":")
    ).encode()


#: Kafka record headers of every alarm and resolution: the CloudEvents Kafka protocol binding
#: requires this content type on structured-mode records.
CLOUDEVENT_HEADERS = {"content-type": b"application/cloudevents+json; charset=utf-8"}


def incident_id(alarm: Alarm) -> str:
    """The id of the incident an alarm opens: derived from the alarm, so a replay agrees, and
    so an alarm whose ``incident`` equals ``incident_id(alarm)`` is the one that opened it."""
    return str(
        uuid.uuid5(
            uuid.NAMESPACE_URL,
            f"driftline:incident:{alarm.dedup_key}@{alarm.index}:{alarm.event_time!r}",
        )
    )


def alarm_id(alarm: Alarm, position: str) -> str:
    """A stable CloudEvent id: the same alarm raised again by the same message (a replay, a
    redelivery) gets the same id, so consumers can drop the duplicate.  ``position`` is where
    the message that raised it came from, e.g. ``"driftline.labels:3:1234"``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"driftline:{alarm.dedup_key}@{position}"))


class InvalidAlarm(ValueError):
    """A message on the alarms topic that is not a driftline drift alarm."""


def is_resolution(raw: bytes | str | None) -> bool:
    """Whether an alarms-topic message is a resolution (the end of an alarm), not an alarm."""
    try:
        return json.loads(raw or b"null").get("type") == RESOLVED_TYPE
    except (ValueError, AttributeError):
        return False


def resolved_key(raw: bytes | str | None) -> str | None:
    """The dedup key a resolution ends (None for anything else)."""
    try:
        event = json.loads(raw or b"null")
        if event.get("type") != RESOLVED_TYPE:
            return None
        key = event["data"]["dedup_key"]
    except (ValueError, AttributeError, KeyError, TypeError):
        return None
    return key if isinstance(key, str) else None


def decode_alarm(raw: bytes | str) -> Alarm:
    try:
        event = json.loads(raw)
        if event.get("specversion") != "1.0" or event.get("type") != ALARM_TYPE:
            raise InvalidAlarm(f"not a {ALARM_TYPE} CloudEvent")
        data = event["data"]
        return Alarm(
            model_id=data["model"],
            model_version=data["model_version"],
            signal_kind=data["signal"]["kind"],
            signal_name=data["signal"]["name"],
            detector=data["detector"],
            statistic=float(data["statistic"]),
            threshold=float(data["threshold"]),
            window=dict(data["window"]),
            severity=data["severity"],
            event_time=float(data["event_time"]),
            index=int(data["index"]),
            detector_params=dict(data.get("detector_params", {})),
            incident=str(data.get("incident", "")),
        )
    except InvalidAlarm:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidAlarm(f"malformed alarm: {exc!r}") from None
