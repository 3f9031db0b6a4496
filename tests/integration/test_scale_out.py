"""Two workers in one consumer group share the partitions; stopping one mid-stream (SIGTERM, then
SIGKILL) moves its models with their checkpoints: nothing lost, nothing counted twice.

The streams issue's trial: two workers on 8 partitions, one stopped with SIGTERM mid-stream;
90 of 24,000 inferences were never counted and the moved model's 1h window held 1,575 of 2,984.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import signal
import time
import uuid

import redis

from contracts.events import InferenceEvent
from contracts.redis_keys import RedisKeys
from streams.producer import EventProducer
from streams.topics import ensure_topics
from tests.integration.conftest import start_worker, stop_worker, wait_until

MODELS = [f"scale-{i}" for i in range(12)]
PER_MODEL = 1500


async def _send(settings, events, rate: float = 3000.0) -> None:
    start = time.monotonic()
    async with EventProducer(settings) as producer:
        for i, event in enumerate(events):
            await producer.send_inference(event)
            if i % 200 == 199:
                await producer.flush()
                await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))


async def test_stopping_workers_mid_stream_loses_and_doubles_nothing(settings, tmp_path):
    group = dataclasses.replace(
        settings.isolated(f"{settings.app_id}-so-{uuid.uuid4().hex[:4]}"), partitions=8
    )
    await ensure_topics(group)
    rng = random.Random(3)
    now = time.time()
    events = [
        InferenceEvent(m, "v1", f"{m}-{i}", now + i * 0.01, {"x": rng.gauss(0, 1)}, 1, score=0.8)
        for i in range(PER_MODEL)
        for m in MODELS
    ]
    client = redis.Redis.from_url(group.redis_url, decode_responses=True)
    keys = RedisKeys(group.key_prefix)

    def processed() -> int:
        return int(client.hget(keys.counters(), "inferences.processed") or 0)

    logs = [tmp_path / "a.log", tmp_path / "b.log", tmp_path / "c.log"]
    a, b = start_worker(group, logs[0]), start_worker(group, logs[1])
    c = None
    try:
        sending = asyncio.create_task(_send(group, events))
        await wait_until(lambda: processed() >= len(events) // 4, 120, "a quarter of the stream")
        stop_worker(a, logs[0])  # SIGTERM: b takes its partitions over
        await wait_until(lambda: processed() >= len(events) // 2, 120, "half of the stream")
        c = start_worker(group, logs[2])  # and a third joins
        await wait_until(lambda: processed() >= 3 * len(events) // 4, 120, "three quarters")
        b.send_signal(signal.SIGKILL)  # c inherits b's models from their checkpoints
        b.wait(timeout=30)
        await sending
        await wait_until(lambda: processed() >= len(events), 180, "the whole stream")
        time.sleep(3)  # flushes after the last message: a double count would show now
        assert processed() == len(events)
        for model in MODELS:
            assert int(client.hget(keys.model_counters(model), "inferences")) == PER_MODEL, model
            window = client.hget(keys.metrics(model, "1h"), "events")
            assert window == str(PER_MODEL), f"{model}: 1h window {window}"
    finally:
        for proc, log in ((c, logs[2]), (b, logs[1])):
            if proc is not None and proc.poll() is None:
                stop_worker(proc, log)
        client.delete(*client.keys(f"{group.key_prefix}:*"))
