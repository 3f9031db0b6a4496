"""PagerDuty Events API v2 bodies: ``trigger`` for a firing alarm, ``resolve`` for its
resolution, both keyed by the alarm's dedup key so PagerDuty pairs them into one incident.

The routing key (an integration key) comes from the environment and is passed in here; it is
part of the body, so bodies are never logged.

>>> from bridges.notice import notice_from_record
>>> from contracts.alarms import Alarm, encode_alarm
>>> alarm = Alarm(model_id="churn", model_version="v3", signal_kind="feature",
...               signal_name="age", detector="cusum", statistic=9.0, threshold=5.0,
...               window={}, severity="warning", event_time=1700000000.0, index=90)
>>> body = pagerduty_event(notice_from_record(encode_alarm(alarm, "/s")), "R" * 32)
>>> body["event_action"], body["dedup_key"], body["payload"]["severity"]
('trigger', 'churn/feature:age/cusum', 'warning')
"""

from __future__ import annotations

from typing import Any

from bridges.alertmanager import rfc3339
from bridges.notice import Notice

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_MAX = 1024  # PagerDuty truncates longer summaries
DEDUP_KEY_MAX = 255
#: driftline severity -> PagerDuty's (critical, error, warning, info)
SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


def pagerduty_event(
    notice: Notice, routing_key: str, client_url: str = "", per_incident: bool = False
) -> dict[str, Any]:
    """Keyed by the alarm's dedup key, or with ``per_incident`` by its incident."""
    dedup_key = (notice.incident_key if per_incident else notice.dedup_key)[:DEDUP_KEY_MAX]
    if not notice.firing:
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key}
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": notice.summary[:SUMMARY_MAX],
            "source": notice.source or "driftline",
            "severity": SEVERITY[notice.severity],
            "timestamp": rfc3339(notice.started_at),
            "component": notice.model,
            "group": notice.incident or notice.model,
            "class": f"{notice.signal_kind}/{notice.detector}",
            "custom_details": {
                "model_version": notice.model_version,
                "signal": f"{notice.signal_kind}:{notice.signal_name}",
                "statistic": notice.statistic,
                "threshold": notice.threshold,
                "incident": notice.incident,
                "alarm_id": notice.event_id,
                "window": notice.data.get("window", {}),
            },
        },
        "client": "driftline",
    }
    if client_url:
        body["client_url"] = client_url
    return body
