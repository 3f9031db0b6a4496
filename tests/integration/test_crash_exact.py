"""A worker SIGKILLed mid-stream, twice, ends with exactly what an undisturbed worker has.

Two deployments (topics, keys, consumer groups of their own) get the same traffic: 6,000
inferences of one model (a feature shifts two thirds in), then a label for each (the error rate
doubles for the last third).  One worker runs undisturbed; the other is killed with SIGKILL
while inferences stream in and again while labels do, and restarted each time.  Every Redis
counter (but the restart's own bookkeeping), every model counter, every metrics window and the
set of alarms on the alarms topic must be equal.  Labels after the second kill judge
predictions that the killed worker held in memory: they come back from Redis
(streams/pending.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import signal
import time
import uuid

import redis

from contracts.alarms import is_resolution
from contracts.events import InferenceEvent, LabelEvent
from contracts.redis_keys import RedisKeys
from streams.producer import EventProducer
from streams.topics import ensure_topics
from tests.integration.conftest import read_topic, start_worker, stop_worker, wait_until

MODEL = "crash-model"
N = 6000
# the restart's own bookkeeping, expected to differ
RESTART_COUNTERS = {"inferences.redelivered", "labels.redelivered", "checkpoints.restored"}


def _traffic(now: float) -> tuple[list[InferenceEvent], list[LabelEvent]]:
    rng = random.Random(5)
    inferences, labels = [], []
    for i in range(N):
        shift = 2.0 if i >= 4000 else 0.0
        features = {"a": rng.gauss(shift, 1), "b": rng.gauss(0, 1)}
        predicted = int(rng.random() < 0.5)
        event = InferenceEvent(MODEL, "v1", f"r{i}", now + i * 0.05, features, predicted, score=0.8)
        wrong = rng.random() < (0.3 if i >= 4000 else 0.1)
        inferences.append(event)
        labels.append(
            LabelEvent(
                MODEL, f"r{i}", 1 - predicted if wrong else predicted, now + N * 0.05 + i * 0.01
            )
        )
    return inferences, labels


async def _send(settings, events, rate: float = 1000.0) -> None:
    """At ``rate`` messages per second, so a kill lands while the stream is still flowing."""
    start = time.monotonic()
    async with EventProducer(settings) as producer:
        for i, event in enumerate(events):
            if isinstance(event, InferenceEvent):
                await producer.send_inference(event)
            else:
                await producer.send_label(event)
            if i % 100 == 99:
                await producer.flush()
                await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))


def _state(settings) -> dict:
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    keys = RedisKeys(settings.key_prefix)
    counters = {
        k: v for k, v in client.hgetall(keys.counters()).items() if k not in RESTART_COUNTERS
    }
    return {
        "counters": counters,
        "model": client.hgetall(keys.model_counters(MODEL)),
        "windows": {w: client.hgetall(keys.metrics(MODEL, w)) for w in ("1m", "1h", "1d")},
        "labelled": client.llen(keys.labelled(MODEL)),
    }


async def _run(settings, tmp_path, traffic, kill: bool) -> tuple[dict, set]:
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    keys = RedisKeys(settings.key_prefix)

    def count(name: str) -> int:
        return int(client.hget(keys.counters(), name) or 0)

    inferences, labels = traffic
    log = tmp_path / f"{settings.app_id}-0.log"
    worker = start_worker(settings, log)
    restarts = 0
    try:
        for phase, events, counter in (("inferences", inferences, "inferences.processed"),
                                       ("labels", labels, "labels.processed")):  # fmt: skip
            sending = asyncio.create_task(_send(settings, events))
            if kill:
                await wait_until(lambda c=counter: count(c) >= 2000, 120, f"2,000 {phase} in Redis")
                worker.send_signal(signal.SIGKILL)
                assert count(counter) < N, "killed after the stream ended: nothing was tested"
                worker.wait(timeout=30)
                restarts += 1
                log = tmp_path / f"{settings.app_id}-{restarts}.log"
                worker = start_worker(settings, log)
            await sending
            await wait_until(lambda c=counter: count(c) >= N, 180, f"all {phase} counted")
        time.sleep(3)  # flushes after the last message: a double count would show now
        state = _state(settings)
    finally:
        stop_worker(worker, log)
    alarms = await read_topic(settings, settings.topics.alarms, lambda got: False, timeout=5)
    seen = set()  # what an alarm says, not its id (ids name the topic they were raised from)
    for record in alarms:
        event = json.loads(record.value)
        data = event["data"]
        when = data["resolved_at"] if is_resolution(record.value) else data["index"]
        seen.add((event["type"], data["dedup_key"], data["incident"], when))
    client.delete(*client.keys(f"{settings.key_prefix}:*"))
    return state, seen


async def test_sigkill_mid_stream_ends_equal_to_an_undisturbed_run(settings, tmp_path):
    traffic = _traffic(time.time())
    calm = dataclasses.replace(settings, app_id=f"{settings.app_id}-calm-{uuid.uuid4().hex[:4]}")
    calm = calm.isolated(calm.app_id)
    killed = settings.isolated(f"{settings.app_id}-killed-{uuid.uuid4().hex[:4]}")
    for s in (calm, killed):
        await ensure_topics(s)
    expected, expected_alarms = await _run(calm, tmp_path, traffic, kill=False)
    got, got_alarms = await _run(killed, tmp_path, traffic, kill=True)
    assert int(expected["counters"]["inferences.processed"]) == N
    assert int(expected["model"]["joined"]) == N
    assert expected_alarms, "the traffic must raise alarms, or the alarm set compares nothing"
    assert got == expected
    assert got_alarms == expected_alarms
