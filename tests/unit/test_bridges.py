"""Paging payloads, checked against the vendors' documented fields without any server."""

from __future__ import annotations

import email.utils

import jsonschema
import pytest

from bridges.alertmanager import alertmanager_payloads
from bridges.delivery import RetryPolicy, parse_retry_after
from bridges.notice import notice_from_record
from bridges.pagerduty import pagerduty_event
from bridges.sinks import Sink, sinks_from_env
from bridges.webhooks import slack_message
from bridges.worker import BridgeConfig, BridgeWorker, Parked
from contracts.alarms import (
    Alarm,
    InvalidAlarm,
    Resolution,
    encode_alarm,
    encode_resolution,
)
from driftline.vendor_schemas import ALERTMANAGER_V4, PAGERDUTY_V2, SLACK_WEBHOOK


def _alarm(model="churn", kind="feature", name="age", severity="warning", t=1.7e9) -> Alarm:
    return Alarm(
        model_id=model,
        model_version="v2",
        signal_kind=kind,
        signal_name=name,
        detector="cusum",
        statistic=7.5,
        threshold=5.0,
        window={},
        severity=severity,
        event_time=t,
        index=100,
        incident="inc-1",
    )


def _firing(**kw):
    return notice_from_record(encode_alarm(_alarm(**kw), source="/driftline/streams/w1"))


def _resolved(**kw):
    alarm = _alarm(**kw)
    return notice_from_record(
        encode_resolution(Resolution(alarm, alarm.event_time + 900, 3, "ok"), "/s")
    )


def test_alertmanager_groups_per_model_and_pairs_firing_with_resolved():
    bodies = alertmanager_payloads(
        [_firing(), _firing(model="fraud"), _resolved(name="tenure")], "oncall"
    )
    assert [b["groupLabels"]["model"] for b in bodies] == ["churn", "fraud"]
    for body in bodies:
        jsonschema.validate(body, ALERTMANAGER_V4)
    churn = bodies[0]
    assert churn["status"] == "firing" and len(churn["alerts"]) == 2
    assert churn["commonLabels"]["model"] == "churn" and "signal" not in churn["commonLabels"]
    [resolved] = alertmanager_payloads([_resolved()], "oncall")
    assert resolved["status"] == "resolved"
    assert resolved["alerts"][0]["fingerprint"] == churn["alerts"][0]["fingerprint"]
    assert resolved["alerts"][0]["endsAt"] == "2023-11-14T22:28:20Z"


def test_pagerduty_trigger_and_resolve_share_the_dedup_key_and_fit_the_limits():
    trigger = pagerduty_event(_firing(name="x" * 2000), "k" * 32)
    resolve = pagerduty_event(_resolved(name="x" * 2000), "k" * 32)
    jsonschema.validate(trigger, PAGERDUTY_V2)
    jsonschema.validate(resolve, PAGERDUTY_V2)
    assert len(trigger["payload"]["summary"]) == 1024
    assert trigger["dedup_key"] == resolve["dedup_key"] and len(trigger["dedup_key"]) == 255
    assert set(resolve) == {"routing_key", "event_action", "dedup_key"}


def test_slack_messages_validate_and_say_resolved():
    jsonschema.validate(slack_message(_firing(severity="critical")), SLACK_WEBHOOK)
    assert slack_message(_resolved())["text"].startswith(":white_check_mark:")


def test_records_that_are_not_alarms_are_refused_with_a_reason():
    for raw, why in [
        (None, "tombstone"),
        (b"{oops", "not JSON"),
        (b'{"specversion": "1.0", "type": "other"}', "unknown CloudEvent type"),
        (b'{"specversion": "1.0", "type": "io.driftline.alarm.drift.v1", "data": {}}', "missing"),
    ]:
        with pytest.raises(InvalidAlarm, match=why):
            notice_from_record(raw)


def test_severity_filter_and_config_errors():
    assert not _firing(severity="info").severity_at_least("warning")
    assert _firing(severity="critical").severity_at_least("warning")
    with pytest.raises(ValueError, match="min_severity"):
        BridgeConfig(min_severity="loud")
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_sink_configuration_never_echoes_a_secret():
    secret_url = "https://hooks.slack.example/services/T0/B0/SeCrEt"
    sinks = sinks_from_env({"DRIFTLINE_SLACK_WEBHOOK_URL": secret_url})
    assert "SeCrEt" not in repr(sinks)
    with pytest.raises(ValueError) as refused:
        sinks_from_env({"DRIFTLINE_WEBHOOK_URL": "ftp://SeCrEt@host/x"})
    assert "SeCrEt" not in str(refused.value) and "DRIFTLINE_WEBHOOK_URL" in str(refused.value)
    assert sinks_from_env({}) == []


def test_retry_after_in_seconds_or_as_an_http_date():
    assert parse_retry_after("30") == 30.0
    date = email.utils.formatdate(1_000_060, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(60.0)
    assert parse_retry_after(None) is None and parse_retry_after("later") is None


def test_parked_headers_round_trip():
    parked = Parked("pagerduty", 3, 1700000000.5, "HTTP 503")
    assert Parked.from_headers(parked.headers()) == parked


class _Record:
    def __init__(self, value, offset=0):
        self.value, self.key, self.topic, self.partition, self.offset = value, b"k", "t", 0, offset
        self.headers = []


class _Producer:
    def __init__(self):
        self.sent = []

    async def send_and_wait(self, topic, value, key=None, headers=None):
        self.sent.append((topic, value, dict(headers or [])))


async def test_a_sink_that_cannot_format_dead_letters_and_the_others_still_deliver():
    from contracts.settings import Settings

    delivered = []

    def broken(notices):
        raise KeyError("oops")

    def fine(notices):
        delivered.extend(notices)
        return []  # nothing to POST

    bridge = BridgeWorker(
        Settings(topic_prefix="t"),
        [
            Sink("broken", "http://127.0.0.1:9/x", broken),
            Sink("fine", "http://127.0.0.1:9/y", fine),
        ],
    )
    bridge._producer = _Producer()
    raw = encode_alarm(_alarm(), source="/s")
    await bridge.handle([_Record(raw), _Record(b"junk", 1)])
    assert len(delivered) == 1
    reasons = [
        (h["driftline.reason"], h.get("driftline.bridge.sink")) for _, _, h in bridge._producer.sent
    ]
    assert reasons == [(b"invalid_alarm", None), (b"processing_error", b"broken")]
    assert bridge.stats["broken.rejected"] == 1


def test_per_incident_pages_once_per_incident_with_a_matching_resolve():
    from bridges.sinks import alertmanager_sink, pagerduty_sink
    from streams.lifecycle import AlarmBook

    book = AlarmBook(resolve_after_s=60, incident_window_s=30)
    opened = [book.open(_alarm(name=f"f{i}", t=1000.0 + i)) for i in range(3)]
    later = book.open(_alarm(name="g", t=2000.0))  # a second incident, later
    assert len({a.incident for a in opened}) == 1 and later.incident != opened[0].incident
    resolutions = book.resolve(now=3000.0, recovered=lambda a: True)
    assert [r.incident_open for r in resolutions] == [2, 1, 0, 0]
    records = [encode_alarm(a, "/s") for a in [*opened, later]]
    records += [encode_resolution(r, "/s") for r in resolutions]
    notices = [notice_from_record(r) for r in records]
    assert [n.pages_for_incident() for n in notices] == [
        True,
        False,
        False,
        True,
        False,
        False,
        True,
        True,
    ]

    pd = pagerduty_sink("k" * 32, "http://127.0.0.1:9/", per_incident=True).build(notices)
    events = [(body["event_action"], body["dedup_key"]) for _, body in pd]
    first, second = f"churn/incident/{opened[0].incident}", f"churn/incident/{later.incident}"
    assert events == [
        ("trigger", first),
        ("trigger", second),
        ("resolve", first),
        ("resolve", second),
    ]
    for _, body in pd:
        jsonschema.validate(body, PAGERDUTY_V2)

    ((covered, body),) = alertmanager_sink("http://127.0.0.1:9/", per_incident=True).build(notices)
    jsonschema.validate(body, ALERTMANAGER_V4)
    assert len(covered) == 4  # two openings, two endings
    by_status = {}
    for a in body["alerts"]:
        by_status.setdefault(a["labels"]["incident"], {})[a["status"]] = a["fingerprint"]
    assert len(by_status) == 2 and all(len(set(v.values())) == 1 for v in by_status.values())
    # per alarm (the default), every notice is sent
    assert len(pagerduty_sink("k" * 32, "http://127.0.0.1:9/").build(notices)) == 8
    with pytest.raises(ValueError, match="DRIFTLINE_BRIDGE_PAGE_PER"):
        sinks_from_env({"DRIFTLINE_BRIDGE_PAGE_PER": "model"})
