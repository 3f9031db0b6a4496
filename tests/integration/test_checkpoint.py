"""Detectors survive a worker restart: state comes back from Redis, redelivery is not re-applied."""

from __future__ import annotations

import dataclasses
import random
import time

import redis

from contracts.events import InferenceEvent
from contracts.redis_keys import RedisKeys
from streams import checkpoint_parts
from streams.producer import EventProducer
from tests.integration.conftest import start_worker, stop_worker, wait_until

MODEL = "ckpt-model"


def _events(start: int, stop: int) -> list[InferenceEvent]:
    rng = random.Random(start)
    now = time.time()
    return [
        InferenceEvent(MODEL, "v1", f"r{i}", now + i, {"x": rng.gauss(0, 1)}, 1, score=0.7)
        for i in range(start, stop)
    ]


async def test_a_restarted_worker_resumes_its_detectors_from_redis(settings, tmp_path):
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    keys = RedisKeys(settings.key_prefix)

    def processed() -> int:
        return int(client.hget(keys.counters(), "inferences.processed") or 0)

    def cusum_on_x() -> dict:
        fields = client.hgetall(keys.checkpoint(MODEL))
        if not fields:
            return {}
        saved = checkpoint_parts.join(fields)["signals"]["feature:x"]["detectors"]["cusum"]
        if saved["detector"] == "rolling":  # input signals roll their reference: the serving one
            inner = saved["state"]["inner"]
            inner["state"]["n_seen"] = saved["state"]["n_seen"]
            return inner
        return saved

    first_log = tmp_path / "first.log"
    first = start_worker(settings, first_log)
    try:
        async with EventProducer(settings) as producer:
            for event in _events(0, 2500):
                await producer.send_inference(event)
        await wait_until(lambda: processed() == 2500, 60, "the first worker's 2,500 events")
        await wait_until(
            lambda: cusum_on_x().get("state", {}).get("n_seen") == 2500,
            30,
            "a checkpoint reflecting all 2,500 events",
        )
    finally:
        stop_worker(first, first_log)
    saved = cusum_on_x()
    assert saved["state"]["sketch"] is None, "the reference (2,000 values) was complete"

    # A second worker in a new consumer group reads the topic from the start: Kafka hands it
    # every old message again, as after a rebalance with an old committed offset.
    second_settings = dataclasses.replace(settings, app_id=f"{settings.app_id}-second")
    second_log = tmp_path / "second.log"
    second = start_worker(second_settings, second_log)
    try:
        async with EventProducer(settings) as producer:
            for event in _events(2500, 3000):
                await producer.send_inference(event)
        await wait_until(lambda: processed() == 3000, 60, "the 500 new events")
        await wait_until(
            lambda: cusum_on_x().get("state", {}).get("n_seen") == 3000,
            30,
            "a checkpoint reflecting 3,000 events",
        )
        # the 1h window resumed too: it holds all 3,000 events, not only the 500 new ones
        await wait_until(
            lambda: client.hget(keys.metrics(MODEL, "1h"), "events") == "3000",
            30,
            "the 1h window to hold all 3,000 events",
        )
        counters = client.hgetall(keys.counters())
        ttls = {w: client.ttl(keys.metrics(MODEL, w)) for w in ("1m", "1h", "1d")}
    finally:
        stop_worker(second, second_log)
    assert 0 < ttls["1m"] <= 600 and 3600 < ttls["1h"] <= 7200 and 86_400 < ttls["1d"] <= 172_800
    assert int(counters["inferences.redelivered"]) == 2500, counters
    assert int(counters["checkpoints.restored"]) == 1, counters
    resumed = cusum_on_x()["state"]
    assert resumed["sketch"] is None, "the detector kept its reference instead of relearning it"
    assert resumed["frame"] == saved["state"]["frame"]
