"""Redis stops answering, the worker is killed meanwhile: nothing is lost, nothing counted twice.

The streams issue's trial: Redis paused for 12 s, the worker killed during the pause.  Faust had
committed offsets for messages whose effects Redis never received: 3,200 events lost.  Offsets
now follow the Redis flush (streams/acks.py), so the restarted worker gets those messages again
and its checkpoint's positions keep what Redis already has from being counted twice.
"""

from __future__ import annotations

import random
import signal
import time

import redis

from contracts.events import InferenceEvent
from contracts.redis_keys import RedisKeys
from streams.producer import EventProducer
from tests.integration.conftest import start_worker, stop_worker, wait_until

MODEL = "outage-model"
PAUSE_S = 15


def _events(start: int, stop: int, now: float) -> list[InferenceEvent]:
    rng = random.Random(start)
    return [
        InferenceEvent(MODEL, "v1", f"r{i}", now + i * 0.01, {"x": rng.gauss(0, 1)}, 1, score=0.7)
        for i in range(start, stop)
    ]


async def test_a_worker_killed_while_redis_is_paused_loses_and_doubles_nothing(settings, tmp_path):
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    keys = RedisKeys(settings.key_prefix)
    now = time.time()

    def processed() -> int:
        return int(client.hget(keys.counters(), "inferences.processed") or 0)

    first = start_worker(settings, tmp_path / "first.log")
    try:
        async with EventProducer(settings) as producer:
            for event in _events(0, 3000, now):
                await producer.send_inference(event)
        await wait_until(lambda: processed() == 3000, 60, "the first 3,000 events in Redis")
        client.execute_command("CLIENT", "PAUSE", PAUSE_S * 1000, "ALL")
        paused_at = time.monotonic()
        async with EventProducer(settings) as producer:  # Kafka is fine: 2,000 more arrive
            for event in _events(3000, 5000, now):
                await producer.send_inference(event)
        time.sleep(8)  # the worker processes them; its flushes wait on the paused Redis
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    time.sleep(max(0.0, PAUSE_S + 1 - (time.monotonic() - paused_at)))

    second_log = tmp_path / "second.log"
    second = start_worker(settings, second_log)
    try:
        await wait_until(lambda: processed() >= 5000, 120, "all 5,000 events counted")
        time.sleep(3)  # a few flushes more: a double count would show now
        assert processed() == 5000
        assert int(client.hget(keys.model_counters(MODEL), "inferences")) == 5000
        await wait_until(
            lambda: client.hget(keys.metrics(MODEL, "1h"), "events") == "5000",
            30,
            "the 1h window to hold all 5,000 events",
        )
    finally:
        stop_worker(second, second_log)
