"""Batch envelopes (rows and columns) through the real worker: every event counted, bad
elements dead-lettered alone."""

from __future__ import annotations

import json
import time

import pytest
import redis

from contracts.columnar import encode_columns
from contracts.envelopes import encode_envelope
from contracts.events import InferenceEvent, LabelEvent
from contracts.redis_keys import RedisKeys
from streams.deadletter import read_headers
from streams.producer import EventProducer
from tests.integration.conftest import read_topic, wait_until

MODEL = "env-model"


@pytest.mark.parametrize("columnar", [False, True], ids=["rows", "columns"])
async def test_envelopes_reconcile_event_by_event(settings, worker, columnar):
    keys = RedisKeys(settings.key_prefix)
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    now = time.time()
    events = [
        InferenceEvent(MODEL, "v1", f"e{i}", now + i * 0.01, {"x": float(i % 7)}, i % 2, score=0.7)
        for i in range(3000)
    ]
    labels = [LabelEvent(MODEL, f"e{i}", i % 2, now + i * 0.01 + 1) for i in range(3000)]
    if columnar:
        broken = json.loads(encode_columns(events[:3]))
        broken["columns"]["latency_ms"] = [None, -5, None]  # impossible
    else:
        broken = json.loads(encode_envelope(events[:3]))
        broken["events"][1]["latency_ms"] = -5
    send = EventProducer.send_inference_columns if columnar else EventProducer.send_inference_batch
    async with EventProducer(settings) as producer:
        for start in range(0, 3000, 100):
            await send(producer, events[start : start + 100])
            await producer.send_label_batch(labels[start : start + 100])
        await producer.send_raw(settings.topics.inferences, json.dumps(broken).encode(), MODEL)
        await producer.send_raw(settings.topics.inferences, None, MODEL)  # a tombstone
    # produced 3000 + 3 inference events (in 31 messages) and a tombstone; 3000 labels
    await wait_until(
        lambda: int(client.hget(keys.counters(), "labels.processed") or 0) == 3000,
        90,
        "all 3,000 labels",
    )
    counters = client.hgetall(keys.counters())
    assert int(counters["inferences.processed"]) == 3000 + 2
    assert int(counters["deadletter.total"]) == 2
    assert int(counters["deadletter.invalid_value"]) == 1
    assert int(counters["deadletter.tombstone"]) == 1
    model = client.hgetall(keys.model_counters(MODEL))
    assert int(model["inferences"]) == 3002 and int(model["joined"]) == 3000
    dead = await read_topic(settings, settings.topics.deadletter, lambda r: len(r) >= 2, 30)
    by_reason = {read_headers(r.headers)["driftline.reason"]: r for r in dead}
    element = by_reason["invalid_value"]
    assert read_headers(element.headers)["driftline.envelope.index"] == "1"
    assert json.loads(element.value)["request_id"] == "e1"
    assert by_reason["tombstone"].value is None
