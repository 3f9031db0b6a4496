"""JSON Schemas written from each receiver's public documentation.

- Alertmanager webhook_config payload, ``version: "4"``
  (prometheus.io/docs/alerting/latest/configuration/#webhook_config);
- PagerDuty Events API v2 ``POST /v2/enqueue`` (developer.pagerduty.com, "Send an Alert Event"):
  ``summary`` at most 1024 characters, ``severity`` one of critical/error/warning/info,
  ``dedup_key`` at most 255 characters; a resolve needs only routing key, action and dedup key;
- Slack incoming webhooks: ``text`` (the notification fallback) and optional Block Kit ``blocks``.
"""

from __future__ import annotations

RFC3339 = {
    "type": "string",
    "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$",
}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

ALERTMANAGER_V4 = {
    "type": "object",
    "required": [
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    ],
    "additionalProperties": False,
    "properties": {
        "version": {"const": "4"},
        "groupKey": {"type": "string", "minLength": 1},
        "truncatedAlerts": {"type": "integer", "minimum": 0},
        "status": {"enum": ["firing", "resolved"]},
        "receiver": {"type": "string", "minLength": 1},
        "groupLabels": STRING_MAP,
        "commonLabels": STRING_MAP,
        "commonAnnotations": STRING_MAP,
        "externalURL": {"type": "string"},
        "alerts": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": [
                    "status",
                    "labels",
                    "annotations",
                    "startsAt",
                    "endsAt",
                    "generatorURL",
                    "fingerprint",
                ],
                "properties": {
                    "status": {"enum": ["firing", "resolved"]},
                    "labels": {**STRING_MAP, "required": ["alertname"]},
                    "annotations": STRING_MAP,
                    "startsAt": RFC3339,
                    "endsAt": RFC3339,
                    "generatorURL": {"type": "string"},
                    "fingerprint": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
                },
            },
        },
    },
}

PAGERDUTY_V2 = {
    "type": "object",
    "required": ["routing_key", "event_action"],
    "additionalProperties": False,
    "properties": {
        "routing_key": {"type": "string", "minLength": 1},
        "event_action": {"enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": {"type": "string", "minLength": 1, "maxLength": 255},
        "payload": {
            "type": "object",
            "required": ["summary", "source", "severity"],
            "additionalProperties": False,
            "properties": {
                "summary": {"type": "string", "minLength": 1, "maxLength": 1024},
                "source": {"type": "string", "minLength": 1},
                "severity": {"enum": ["critical", "error", "warning", "info"]},
                "timestamp": RFC3339,
                "component": {"type": "string"},
                "group": {"type": "string"},
                "class": {"type": "string"},
                "custom_details": {"type": "object"},
            },
        },
        "images": {"type": "array"},
        "links": {"type": "array"},
        "client": {"type": "string"},
        "client_url": {"type": "string"},
    },
    "allOf": [
        {
            "if": {"properties": {"event_action": {"const": "trigger"}}},
            "then": {"required": ["payload"]},
        },
        {
            "if": {"properties": {"event_action": {"enum": ["acknowledge", "resolve"]}}},
            "then": {"required": ["dedup_key"], "not": {"required": ["payload"]}},
        },
    ],
}

SLACK_WEBHOOK = {
    "type": "object",
    "required": ["text"],
    "properties": {
        "text": {"type": "string", "minLength": 1},
        "blocks": {
            "type": "array",
            "maxItems": 50,
            "items": {"type": "object", "required": ["type"]},
        },
    },
}
