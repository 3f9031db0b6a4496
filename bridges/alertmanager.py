"""Alertmanager webhook payloads, version 4: what Prometheus Alertmanager POSTs to a
``webhook_config`` receiver, so every tool that takes Alertmanager webhooks takes driftline's.

Notices are grouped per model (``groupLabels`` ``{"model": ...}``), one POST per group.  An alert's
``fingerprint`` is a hash of its labels, so an alarm and its resolution share it; a firing
alert's ``endsAt`` is Alertmanager's zero time.

>>> from bridges.notice import notice_from_record
>>> from contracts.alarms import Alarm, encode_alarm
>>> alarm = Alarm(model_id="churn", model_version="v3", signal_kind="error", signal_name="error",
...               detector="cusum", statistic=0.3, threshold=0.1, window={},
...               severity="critical", event_time=1700000000.0, index=90)
>>> [body] = alertmanager_payloads([notice_from_record(encode_alarm(alarm, "/s"))], "driftline")
>>> body["version"], body["status"], body["groupLabels"], body["alerts"][0]["endsAt"]
('4', 'firing', {'model': 'churn'}, '0001-01-01T00:00:00Z')
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from bridges.notice import Notice

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's "no end yet"


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def fingerprint(labels: dict[str, str]) -> str:
    """16 hex digits over the sorted labels (Alertmanager's fingerprints are 16 hex digits)."""
    text = "\xff".join(f"{k}\xfe{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def alert(
    notice: Notice, generator_url: str = "", runbook_url: str = "", per_incident: bool = False
) -> dict[str, Any]:
    labels = notice.labels(per_incident)
    annotations = {
        "summary": notice.summary,
        "dedup_key": notice.dedup_key,
        "incident": notice.incident,
    }
    if notice.statistic is not None:
        annotations["statistic"] = f"{notice.statistic:.6g}"
        annotations["threshold"] = f"{notice.threshold:.6g}"
    if runbook_url:
        annotations["runbook_url"] = f"{runbook_url}#{notice.signal_kind}"
    return {
        "status": notice.status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(notice.started_at),
        "endsAt": ZERO_TIME if notice.ended_at is None else rfc3339(notice.ended_at),
        "generatorURL": generator_url,
        "fingerprint": fingerprint(labels),
    }


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    first, *rest = dicts
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in rest)}


def alertmanager_payloads(
    notices: list[Notice],
    receiver: str,
    external_url: str = "",
    generator_url: str = "",
    runbook_url: str = "",
    per_incident: bool = False,
) -> list[dict[str, Any]]:
    """One webhook body per model, in the order the models first appear."""
    by_model: dict[str, list[Notice]] = defaultdict(list)
    for notice in notices:
        by_model[notice.model].append(notice)
    bodies = []
    for model, group in by_model.items():
        alerts = [alert(n, generator_url, runbook_url, per_incident) for n in group]
        bodies.append(
            {
                "version": "4",
                "groupKey": f'{{}}:{{model="{model}"}}',
                "truncatedAlerts": 0,
                "status": "firing" if any(n.firing for n in group) else "resolved",
                "receiver": receiver,
                "groupLabels": {"model": model},
                "commonLabels": _common([a["labels"] for a in alerts]),
                "commonAnnotations": _common([a["annotations"] for a in alerts]),
                "externalURL": external_url,
                "alerts": alerts,
            }
        )
    return bodies
