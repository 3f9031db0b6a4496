"""Every kind of malformed event lands in the dead-letter topic with its reason; counts reconcile."""

from __future__ import annotations

import json
import time

import redis

from contracts.events import InferenceEvent, LabelEvent
from contracts.redis_keys import RedisKeys
from streams.deadletter import read_headers
from streams.producer import EventProducer
from tests.integration.conftest import read_topic, wait_until
from tests.unit.test_events import MALFORMED

BAD_LABELS = [
    (
        b'{"schema_version": 1, "model_id": "dl", "request_id": "x", "event_time": 1}',
        "missing_field",
    ),
    (
        b'{"schema_version": 1, "model_id": "dl", "request_id": "x", "label": 1, "event_time": NaN}',
        "non_finite_number",
    ),
    (b"\x00\x01binary", "invalid_json"),
]


async def test_malformed_events_are_dead_lettered_and_counts_reconcile(settings, worker):
    topics = settings.topics
    now = time.time()
    good = [
        InferenceEvent("dl-model", "v1", f"ok-{i}", now + i, {"x": float(i)}, 1, score=0.5)
        for i in range(50)
    ]
    labels = [LabelEvent("dl-model", f"ok-{i}", 1, now + i + 1) for i in range(20)]
    async with EventProducer(settings) as producer:
        for event in good:
            await producer.send_inference(event)
        for raw, _ in MALFORMED:
            await producer.send_raw(topics.inferences, raw, "dl-model")
        for label in labels:
            await producer.send_label(label)
        for raw, _ in BAD_LABELS:
            await producer.send_raw(topics.labels, raw, "dl-model")
    produced = len(good) + len(MALFORMED) + len(labels) + len(BAD_LABELS)
    expected_dead = len(MALFORMED) + len(BAD_LABELS)

    records = await read_topic(
        settings, topics.deadletter, lambda r: len(r) >= expected_dead, timeout=60
    )
    assert len(records) == expected_dead, "each malformed event is dead-lettered exactly once"
    got = sorted((r.value, read_headers(r.headers)["driftline.reason"]) for r in records)
    assert got == sorted(MALFORMED + BAD_LABELS), "original bytes and reason, for every kind"
    for record in records:
        headers = read_headers(record.headers)
        assert headers["driftline.detail"]
        assert headers["driftline.source.topic"] in (topics.inferences, topics.labels)
        assert int(headers["driftline.source.offset"]) >= 0

    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    key = RedisKeys(settings.key_prefix).counters()

    def reconciled() -> bool:
        c = client.hgetall(key)
        processed = int(c.get("inferences.processed", 0)) + int(c.get("labels.processed", 0))
        return processed + int(c.get("deadletter.total", 0)) == produced

    await wait_until(reconciled, 30, "produced == processed + dead-lettered in Redis counters")
    counters = client.hgetall(key)
    assert int(counters["inferences.processed"]) == len(good)
    assert int(counters["labels.processed"]) == len(labels)
    assert int(counters["deadletter.total"]) == expected_dead
    assert int(counters["deadletter.non_finite_number"]) == sum(
        r == "non_finite_number" for _, r in MALFORMED + BAD_LABELS
    )

    # the worker survived all of it and still processes good events
    async with EventProducer(settings) as producer:
        await producer.send_inference(InferenceEvent("dl-model", "v1", "after", now, {"x": 1.0}, 1))
    await wait_until(
        lambda: int(client.hget(key, "inferences.processed") or 0) == len(good) + 1,
        30,
        "the event sent after the bad ones",
    )
    assert worker.poll() is None
    metrics = client.hgetall(RedisKeys(settings.key_prefix).metrics("dl-model", "1h"))
    assert float(metrics["accuracy"]) == 1.0 and int(metrics["labelled"]) == len(labels)
    assert (
        json.loads(client.lindex(RedisKeys(settings.key_prefix).labelled("dl-model"), 0))["label"]
        == 1
    )


async def test_a_message_of_a_megabyte_is_dead_lettered_and_the_worker_keeps_going(
    settings, worker
):
    """The broker accepts ~1,040,000 bytes; a copy of it does not fit Faust's producer.  The
    streams issue's trial: the agent crashed and the message was counted nowhere.  Now the
    dead-letter record carries the reason and where the original is, without its value."""
    keys = RedisKeys(settings.key_prefix)
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    before = client.hgetall(keys.counters())
    huge = b'{"schema_version": 1, "model_id": "big", "pad": "' + b"z" * 1_040_000 + b'"}'
    after_it = InferenceEvent("big", "v1", "after", time.time(), {"x": 1.0}, 1, score=0.5)
    async with EventProducer(settings) as producer:
        await producer.send_raw(settings.topics.inferences, huge, "big")
        await producer.send_inference(after_it)

    def grew(name: str) -> int:
        return int(client.hget(keys.counters(), name) or 0) - int(before.get(name) or 0)

    await wait_until(
        lambda: grew("deadletter.missing_field") >= 1 and grew("inferences.processed") >= 1,
        60,
        "the big message dead-lettered and the next one processed",
    )
    dead = await read_topic(
        settings,
        settings.topics.deadletter,
        lambda records: any("driftline.value_omitted" in read_headers(r.headers) for r in records),
        30,
    )
    (record,) = [r for r in dead if "driftline.value_omitted" in read_headers(r.headers)]
    assert read_headers(record.headers)["driftline.reason"] == "missing_field"
    assert record.value is None
    assert read_headers(record.headers)["driftline.value_omitted"] == str(len(huge))
