"""One alarms-topic record as a :class:`Notice`: what a pager needs, whatever the receiver.

The alarms topic carries two CloudEvent types (:mod:`contracts.alarms`): an alarm that opens
(``status`` ``firing``) and its resolution (``status`` ``resolved``).  Both carry the alarm's
``dedup_key``, which receivers use to pair a resolve with its trigger.

>>> from contracts.alarms import Alarm, encode_alarm
>>> alarm = Alarm(model_id="churn", model_version="v3", signal_kind="feature",
...               signal_name="age", detector="cusum", statistic=9.1, threshold=5.0,
...               window={}, severity="warning", event_time=1700000000.0, index=812)
>>> notice = notice_from_record(encode_alarm(alarm, source="/driftline/streams/w1"))
>>> notice.status, notice.dedup_key
('firing', 'churn/feature:age/cusum')
>>> notice.summary
'churn: feature age drifted (cusum 9.1 > 5)'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from contracts.alarms import (
    ALARM_TYPE,
    RESOLVED_TYPE,
    SEVERITIES,
    InvalidAlarm,
    decode_alarm,
    incident_id,
)

#: What each signal kind means, for summaries (the runbook has the long form).
KIND_WORDS = {
    "feature": "feature {name} drifted",
    "score": "score distribution moved",
    "error": "error rate rose",
    "system": "{name} degraded",
    "data": "data quality: {name}",
    "security": "suspicious inputs ({name})",
    "output": "outputs moved ({name})",
    "performance": "estimated accuracy fell",
    "rule": "output rule broken: {name}",
    "rollout": "new version rolled back",
}


@dataclass(frozen=True, slots=True)
class Notice:
    """A firing or resolved alarm, in the terms every receiver needs."""

    status: str  # "firing" or "resolved"
    model: str
    model_version: str
    signal_kind: str
    signal_name: str
    detector: str
    severity: str
    dedup_key: str
    incident: str
    started_at: float  # event time the alarm opened
    ended_at: float | None  # event time it resolved (None while firing)
    statistic: float | None
    threshold: float | None
    event_id: str
    source: str
    data: dict[str, Any] = field(compare=False)  # the CloudEvent's data, for custom details
    event: dict[str, Any] = field(compare=False)  # the whole CloudEvent
    opens_incident: bool = True  # firing: this alarm started its incident
    incident_open: int = 0  # resolved: alarms of its incident still open (0: the incident ends)

    @property
    def firing(self) -> bool:
        return self.status == "firing"

    @property
    def incident_key(self) -> str:
        """What pages per incident are keyed by (the alarm's dedup key if it has none)."""
        return f"{self.model}/incident/{self.incident}" if self.incident else self.dedup_key

    def pages_for_incident(self) -> bool:
        """Whether this notice changes its incident: the alarm that opened it, or the
        resolution that ended it (an alarm without an incident pages on its own)."""
        if not self.incident:
            return True
        return self.opens_incident if self.firing else self.incident_open == 0

    @property
    def summary(self) -> str:
        words = KIND_WORDS.get(self.signal_kind, "{name} alarm").format(name=self.signal_name)
        text = f"{self.model}: {words}"
        if not self.firing:
            return f"{text}: resolved"
        if self.statistic is not None and self.threshold is not None:
            text += f" ({self.detector} {self.statistic:.3g} > {self.threshold:.3g})"
        return text

    def labels(self, per_incident: bool = False) -> dict[str, str]:
        """Identity labels: the same for an alarm and its resolution (per incident: for the
        alarm that opened the incident and the resolution that ended it)."""
        if per_incident and self.incident:
            return {
                "alertname": "DriftlineIncident",
                "model": self.model,
                "incident": self.incident,
            }
        return {
            "alertname": "DriftlineAlarm",
            "model": self.model,
            "model_version": self.model_version,
            "signal_kind": self.signal_kind,
            "signal": self.signal_name,
            "detector": self.detector,
            "severity": self.severity,
        }

    def severity_at_least(self, minimum: str) -> bool:
        return SEVERITIES.index(self.severity) >= SEVERITIES.index(minimum)


def _opens_incident(raw: bytes | str) -> bool:
    """An incident's id is derived from the alarm that opened it (contracts.alarms)."""
    alarm = decode_alarm(raw)
    return not alarm.incident or alarm.incident == incident_id(alarm)


def notice_from_record(raw: bytes | str | None) -> Notice:
    """Parse one alarms-topic value; :class:`InvalidAlarm` says why it is not one."""
    if raw is None:
        raise InvalidAlarm("empty message (tombstone)")
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidAlarm(f"not JSON: {exc}") from None
    if not isinstance(event, dict) or event.get("specversion") != "1.0":
        raise InvalidAlarm("not a CloudEvent 1.0")
    kind = event.get("type")
    if kind not in (ALARM_TYPE, RESOLVED_TYPE):
        raise InvalidAlarm(f"unknown CloudEvent type {kind!r}")
    data = event.get("data")
    try:
        firing = kind == ALARM_TYPE
        severity = str(data["severity"])
        if severity not in SEVERITIES:
            raise InvalidAlarm(f"unknown severity {severity!r}")
        return Notice(
            status="firing" if firing else "resolved",
            model=str(data["model"]),
            model_version=str(data["model_version"]),
            signal_kind=str(data["signal"]["kind"]),
            signal_name=str(data["signal"]["name"]),
            detector=str(data["detector"]),
            severity=severity,
            dedup_key=str(data["dedup_key"]),
            incident=str(data.get("incident", "")),
            started_at=float(data["event_time"] if firing else data["opened_at"]),
            ended_at=None if firing else float(data["resolved_at"]),
            statistic=float(data["statistic"]) if firing else None,
            threshold=float(data["threshold"]) if firing else None,
            event_id=str(event["id"]),
            source=str(event.get("source", "")),
            data=data,
            event=event,
            opens_incident=_opens_incident(raw) if firing else False,
            incident_open=0 if firing else int(data.get("incident_open", 0)),
        )
    except InvalidAlarm:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidAlarm(f"malformed {kind}: missing or bad {exc}") from None
