"""The paging bridge on the real broker, delivering to real HTTP receivers on 127.0.0.1 that
check every body against the vendor's documented fields (driftline/vendor_schemas.py)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from bridges.delivery import RetryPolicy
from bridges.sinks import alertmanager_sink, pagerduty_sink, slack_sink, webhook_sink
from bridges.worker import BridgeConfig, BridgeWorker
from contracts.alarms import Alarm, Resolution, encode_alarm, encode_resolution
from driftline.receivers import Receiver
from driftline.vendor_schemas import ALERTMANAGER_V4, PAGERDUTY_V2, SLACK_WEBHOOK
from streams.deadletter import read_headers
from streams.topics import ensure_topics
from tests.integration.conftest import read_topic, wait_until

ROUTING_KEY = "R0UT1NGKEY" + "x" * 22  # a secret: must never reach a log
SLACK_PATH = "/services/T000/B000/SeCrEtSlAcKpAtH"

FAST = RetryPolicy(attempts=6, initial_s=0.05, max_backoff_s=0.5, timeout_s=5)


def _alarm(model: str, kind: str = "error", severity: str = "critical", t: float = 1.7e9) -> Alarm:
    return Alarm(
        model_id=model,
        model_version="v1",
        signal_kind=kind,
        signal_name=kind,
        detector="cusum",
        statistic=0.31,
        threshold=0.12,
        window={"width": 300},
        severity=severity,
        event_time=t,
        index=900,
        incident=f"inc-{model}",
    )


async def _produce(settings, values: list[bytes], key: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_list)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(settings.topics.alarms, value, key=key)
    finally:
        await producer.stop()


async def _committed(settings, group: str) -> int:
    """The group's committed offsets on the alarms topic, summed (0: nothing committed)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_list)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(m.offset for tp, m in offsets.items() if tp.topic == settings.topics.alarms)


def _alerts(receiver) -> list[dict]:
    """Every alert an Alertmanager-style receiver got, in order, whatever the batching."""
    return [alert for body in receiver.accepted for alert in body["alerts"]]


@pytest.fixture
async def fresh(settings):
    """Topics of this test's own (each test reads its alarms topic from the start)."""
    mine = settings.isolated(f"{settings.topic_prefix}-{uuid.uuid4().hex[:6]}")
    await ensure_topics(mine)
    return mine


class Running:
    """A bridge running in this event loop until the block ends."""

    def __init__(self, settings, sinks, config, group):
        # the group is this test's own (a shared one would carry offsets and generations over)
        self.bridge = BridgeWorker(
            settings, sinks, config, group_id=f"{settings.topic_prefix}-{group}"
        )
        self.stop = asyncio.Event()

    async def __aenter__(self) -> BridgeWorker:
        self.task = asyncio.create_task(self.bridge.run(self.stop))
        ready = asyncio.create_task(self.bridge.ready.wait())
        done, _ = await asyncio.wait(
            {self.task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED
        )
        if self.task in done:
            self.task.result()  # raises the bridge's error
        assert ready in done, "the bridge never got its partitions"
        return self.bridge

    async def __aexit__(self, *exc) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)


@pytest.mark.timeout(180)
async def test_trigger_then_resolve_reaches_every_receiver_in_its_vendor_format(fresh, caplog):
    settings = fresh
    caplog.set_level(logging.DEBUG)
    model = "bridge-pages"
    alarm = _alarm(model)
    async with (
        Receiver("alertmanager", ALERTMANAGER_V4) as am,
        Receiver("pagerduty", PAGERDUTY_V2, path="/v2/enqueue", secret=ROUTING_KEY) as pd,
        Receiver(
            "webhook",
            {"required": ["specversion", "type", "data"]},
            content_type="application/cloudevents+json",
        ) as hook,
        Receiver("slack", SLACK_WEBHOOK, path=SLACK_PATH) as slack,
    ):
        # PagerDuty is unwell for a while: three 503s, then a 429 with Retry-After
        pd.fail_next(503, times=3)
        pd.fail_next(429, retry_after="1")
        sinks = [
            alertmanager_sink(am.url, "oncall-ml", external_url="http://127.0.0.1:8050"),
            pagerduty_sink(ROUTING_KEY, pd.url),
            webhook_sink(hook.url),
            slack_sink(slack.url),
        ]
        values = [
            encode_alarm(alarm, source="/driftline/streams/w1"),
            encode_alarm(_alarm(model, "feature", severity="info"), source="/s"),  # filtered
            b"{not an alarm",
            encode_resolution(Resolution(alarm, 1.7e9 + 600, 4, "quiet for 600s"), "/s"),
        ]
        async with Running(settings, sinks, BridgeConfig(retry=FAST), "pages") as bridge:
            started = time.monotonic()
            await _produce(settings, values, model.encode())
            await wait_until(
                lambda: (
                    len(_alerts(am)) >= 2 and all(len(r.accepted) >= 2 for r in (pd, hook, slack))
                ),
                60,
                "a trigger and a resolve at every receiver",
            )
            waited = time.monotonic() - started
            await wait_until(lambda: bridge.stats["notices.invalid"] == 1, 10, "the invalid one")
        assert not any(r.invalid for r in (am, pd, hook, slack)), [
            r.invalid for r in (am, pd, hook, slack)
        ]

    # Alertmanager v4: firing then resolved, same fingerprint, grouped per model
    # (one POST per model per batch: the two may arrive in one body or in two)
    for body in am.accepted:
        assert body["receiver"] == "oncall-ml" and body["groupLabels"] == {"model": model}
        assert body["status"] == (
            "firing" if any(a["status"] == "firing" for a in body["alerts"]) else "resolved"
        )
    a1, a2 = _alerts(am)
    assert (a1["status"], a2["status"]) == ("firing", "resolved")
    assert a1["fingerprint"] == a2["fingerprint"]
    assert a1["labels"]["severity"] == "critical" and a1["labels"]["signal_kind"] == "error"
    assert a1["endsAt"] == "0001-01-01T00:00:00Z" and a2["endsAt"] > a2["startsAt"]
    # PagerDuty v2: trigger then resolve on the alarm's dedup key, after 503s and a 429
    trigger, resolve = pd.accepted
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"] == alarm.dedup_key
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["custom_details"]["incident"] == f"inc-{model}"
    assert pd.requests == 4 + 2 and bridge.stats["pagerduty.retries"] == 4
    assert waited >= 1.0  # the Retry-After second was honoured
    assert bridge.stats["pagerduty.parked"] == 0 and bridge.stats["pagerduty.delivered"] == 2
    # generic webhook: the CloudEvent itself; Slack: text + blocks
    assert [e["data"]["status"] for e in hook.accepted] == ["firing", "resolved"]
    assert slack.accepted[0]["text"].startswith(":red_circle: [critical]")
    # the info alarm was filtered, the garbage dead-lettered with its reason, and nothing else
    assert bridge.stats["notices.filtered"] == 1
    dead = await read_topic(
        settings,
        settings.topics.deadletter,
        lambda rs: any(
            read_headers(r.headers).get("driftline.reason") == "invalid_alarm" for r in rs
        ),
        30,
    )
    reasons = [read_headers(r.headers) for r in dead]
    assert any(
        h["driftline.reason"] == "invalid_alarm" and "not JSON" in h["driftline.detail"]
        for h in reasons
    )
    # secrets never logged
    assert ROUTING_KEY not in caplog.text and "SeCrEt" not in caplog.text
    assert "pagerduty: HTTP 503; trying again" in caplog.text


@pytest.mark.timeout(180)
async def test_a_receiver_down_for_long_gets_the_page_from_the_retry_topic(fresh):
    settings = fresh
    model = "bridge-parked"
    async with Receiver("pagerduty", PAGERDUTY_V2, path="/v2/enqueue", secret=ROUTING_KEY) as pd:
        pd.fail_for(4.0)  # longer than the bridge's own retries (about 0.5 s here)
        config = BridgeConfig(
            retry=RetryPolicy(attempts=3, initial_s=0.05, max_backoff_s=0.2), park_initial_s=1.0
        )
        async with Running(
            settings, [pagerduty_sink(ROUTING_KEY, pd.url)], config, "parked"
        ) as bridge:
            await _produce(settings, [encode_alarm(_alarm(model), source="/s")], model.encode())
            await wait_until(lambda: pd.accepted, 60, "the parked page")
        assert bridge.stats["pagerduty.parked"] >= 1
        assert bridge.stats["pagerduty.delivered"] == 1
        assert pd.accepted[0]["dedup_key"] == _alarm(model).dedup_key
    parked = await read_topic(settings, settings.topics.alarms_retry, lambda rs: len(rs) >= 1, 30)
    headers = read_headers(parked[0].headers)
    assert headers["driftline.bridge.sink"] == "pagerduty"
    assert headers["driftline.bridge.last_error"] == "HTTP 503"


@pytest.mark.timeout(180)
async def test_offsets_wait_for_delivery_and_a_refused_page_is_dead_lettered(fresh):
    settings = fresh
    model = "bridge-commit"
    group = "commit-after-delivery"
    async with Receiver("webhook", {"required": ["type"]}) as hook:
        hook.fail_for(600)  # down for the whole first run
        slow = BridgeConfig(retry=RetryPolicy(attempts=1000, initial_s=0.05, max_backoff_s=0.1))
        async with Running(settings, [webhook_sink(hook.url)], slow, group):
            await _produce(settings, [encode_alarm(_alarm(model), source="/s")], model.encode())
            await wait_until(lambda: hook.requests >= 3, 30, "tries at the failing receiver")
        # stopped mid-retry: the alarm's offset is not committed ...
        assert await _committed(settings, f"{settings.topic_prefix}-{group}") == 0
        hook.failing_until = None
        # ... so the next bridge of the group delivers it
        async with Running(settings, [webhook_sink(hook.url)], slow, group) as bridge:
            await wait_until(lambda: hook.accepted, 60, "the redelivered page")
            await wait_until(lambda: bridge.stats["webhook.delivered"] == 1, 10, "its count")
        assert (
            await _committed(settings, f"{settings.topic_prefix}-{group}") == 1
        )  # one alarm, offset 0 done

    # a receiver that refuses the body (HTTP 400) is not retried: the page is dead-lettered
    async with Receiver("slack", SLACK_WEBHOOK) as slack:
        slack.fail_next(400)
        async with Running(
            settings, [slack_sink(slack.url)], BridgeConfig(retry=FAST), "refused"
        ) as bridge:
            await wait_until(lambda: bridge.stats["slack.rejected"] >= 1, 60, "the refusal")
        assert slack.requests == 1 and not slack.accepted
    dead = await read_topic(
        settings,
        settings.topics.deadletter,
        lambda rs: any(read_headers(r.headers).get("driftline.reason") == "rejected" for r in rs),
        30,
    )
    refused = [read_headers(r.headers) for r in dead]
    assert any(h.get("driftline.detail") == "slack refused it: HTTP 400" for h in refused)


@pytest.mark.timeout(180)
async def test_the_bridge_command_pages_serves_metrics_and_stops_cleanly(fresh, tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import sys

    import aiohttp

    from tests.integration.conftest import REPO

    settings = fresh
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, **settings.to_env(), "DRIFTLINE_METRICS_PORT": str(port)}
    no_sinks = subprocess.run(
        [sys.executable, "-m", "driftline.cli", "bridge"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )
    assert no_sinks.returncode == 2 and "no paging sink is configured" in no_sinks.stderr
    async with Receiver("webhook", {"required": ["type"]}, path="/in/SeCrEtPaTh") as hook:
        env["DRIFTLINE_WEBHOOK_URL"] = hook.url
        log = tmp_path / "bridge.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "driftline.cli", "bridge"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )
        try:
            await wait_until(lambda: "bridge ready" in log.read_text(), 60, "the bridge")
            model = "bridge-cli"
            await _produce(settings, [encode_alarm(_alarm(model), source="/s")], model.encode())
            await wait_until(lambda: hook.accepted, 60, "the page")
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}/metrics") as response,
            ):
                metrics = await response.text()
            delivered = 'driftline_bridge_deliveries_total{outcome="delivered",sink="webhook"} 1.0'
            assert delivered in metrics, metrics[-2000:]
            lag = [
                line
                for line in metrics.splitlines()
                if line.startswith("driftline_bridge_consumer_lag{")
            ]
            assert lag and all(line.endswith(" 0.0") for line in lag), lag
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
        text = log.read_text()
        assert code == 0 and "Traceback" not in text, text[-3000:]
        assert "SeCrEtPaTh" not in text  # the URL's path is never logged


@pytest.mark.timeout(120)
async def test_per_incident_one_trigger_and_one_resolve_reach_pagerduty(fresh):
    from streams.lifecycle import AlarmBook

    settings = fresh
    model = "bridge-incident"
    book = AlarmBook(resolve_after_s=60, incident_window_s=30)
    opened = [book.open(_alarm(model, kind=k)) for k in ("feature", "data", "security")]
    resolved = book.resolve(now=1.7e9 + 600, recovered=lambda a: True)
    values = [encode_alarm(a, "/s") for a in opened] + [
        encode_resolution(r, "/s") for r in resolved
    ]
    async with Receiver("pagerduty", PAGERDUTY_V2, path="/v2/enqueue", secret=ROUTING_KEY) as pd:
        sink = pagerduty_sink(ROUTING_KEY, pd.url, per_incident=True)
        async with Running(settings, [sink], BridgeConfig(retry=FAST), "incident") as bridge:
            await _produce(settings, values, model.encode())
            await wait_until(
                lambda: (
                    bridge.stats["pagerduty.delivered"] + bridge.stats["pagerduty.grouped"] == 6
                ),
                60,
                "all six notices handled",
            )
    assert [(b["event_action"], b["dedup_key"]) for b in pd.accepted] == [
        ("trigger", f"{model}/incident/{opened[0].incident}"),
        ("resolve", f"{model}/incident/{opened[0].incident}"),
    ]
    assert bridge.stats["pagerduty.grouped"] == 4
