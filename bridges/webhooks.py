"""Bodies for a generic JSON webhook (the alarm's CloudEvent itself) and for Slack-style
incoming webhooks (``text`` plus Block Kit ``blocks``).

>>> from bridges.notice import notice_from_record
>>> from contracts.alarms import Alarm, encode_alarm
>>> alarm = Alarm(model_id="churn", model_version="v3", signal_kind="error", signal_name="error",
...               detector="cusum", statistic=0.3, threshold=0.1, window={},
...               severity="critical", event_time=1700000000.0, index=90)
>>> slack_message(notice_from_record(encode_alarm(alarm, "/s")))["text"]
':red_circle: [critical] churn: error rate rose (cusum 0.3 > 0.1)'
"""

from __future__ import annotations

from typing import Any

from bridges.notice import Notice

EMOJI = {
    "critical": ":red_circle:",
    "warning": ":large_orange_circle:",
    "info": ":information_source:",
}


def cloudevent_body(notice: Notice) -> dict[str, Any]:
    """The CloudEvent as it came off the alarms topic (sent as application/cloudevents+json)."""
    return notice.event


def slack_message(notice: Notice) -> dict[str, Any]:
    mark = EMOJI[notice.severity] if notice.firing else ":white_check_mark:"
    text = f"{mark} [{notice.severity}] {notice.summary}"
    facts = [
        f"*model* `{notice.model}` {notice.model_version}",
        f"*signal* `{notice.signal_kind}:{notice.signal_name}` by {notice.detector}",
        f"*dedup key* `{notice.dedup_key}`",
    ]
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f} for f in facts]},
        ],
    }
