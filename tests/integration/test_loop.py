"""The whole loop on the real stack: drifted events -> alarm -> learner update -> ModelHandle swap."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis
from redis import asyncio as aioredis

from contracts.events import InferenceEvent, LabelEvent
from contracts.redis_keys import RedisKeys
from driftline.simulation import DriftingScenario
from learners.handle import ModelHandle
from learners.registry import ModelRegistry
from learners.worker import LearnerWorker
from streams.producer import EventProducer
from tests.integration.conftest import read_topic, wait_until

MODEL = "loop-model"


async def test_drift_raises_an_alarm_and_the_new_model_is_served(settings, worker):
    keys = RedisKeys(settings.key_prefix)
    scenario = DriftingScenario(seed=11, drift_at=3000)
    champion = scenario.train_champion()
    aclient = aioredis.Redis.from_url(settings.redis_url)
    await ModelRegistry(aclient, keys).set_champion(MODEL, "v1", champion, 1)

    stop = asyncio.Event()
    handle = ModelHandle(MODEL, champion, "v1")
    learner = LearnerWorker(settings, min_samples=300, max_wait_s=60)
    tasks = [
        asyncio.create_task(
            handle.follow(settings.bootstrap_list, settings.topics.model_updates, stop)
        ),
        asyncio.create_task(learner.run(stop)),
    ]
    try:
        await asyncio.wait_for(asyncio.gather(handle.ready.wait(), learner.ready.wait()), 60)
        served_by: dict[str, int] = {}
        async with EventProducer(settings) as producer:
            lag: list[LabelEvent] = []
            for i in range(9000):
                features, truth = scenario.sample(i)
                version, proba = handle.predict(features)
                served_by[version] = served_by.get(version, 0) + 1
                now = time.time()
                await producer.send_inference(
                    InferenceEvent(
                        MODEL,
                        version,
                        f"r{i}",
                        now,
                        features,
                        int(proba >= 0.5),
                        score=proba,
                        latency_ms=5.0,
                    )
                )
                lag.append(LabelEvent(MODEL, f"r{i}", truth, now))
                if len(lag) > 50:  # labels arrive 50 predictions late
                    await producer.send_label(lag.pop(0))
                if i % 200 == 0:
                    await producer.flush()
                    await asyncio.sleep(0.05)  # give the loop time to close while traffic flows
            for label in lag:
                await producer.send_label(label)

        await wait_until(
            lambda: handle.version != "v1", 90, "the model server to swap to a new version"
        )
        async with EventProducer(settings) as producer:  # traffic after the swap
            for i in range(9000, 9200):
                features, truth = scenario.sample(i)
                version, proba = handle.predict(features)
                served_by[version] = served_by.get(version, 0) + 1
                await producer.send_inference(
                    InferenceEvent(
                        MODEL,
                        version,
                        f"r{i}",
                        time.time(),
                        features,
                        int(proba >= 0.5),
                        score=proba,
                    )
                )
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await aclient.aclose()

    # the alarm that started it, as a CloudEvent on the alarms topic
    records = await read_topic(
        settings, settings.topics.alarms, lambda r: any(b'"error"' in x.value for x in r), 30
    )
    events = [json.loads(r.value) for r in records]
    error_alarms = [
        e for e in events if e["data"]["signal"]["kind"] == "error" and e["data"]["model"] == MODEL
    ]
    assert error_alarms, f"no error-rate alarm among {[e['data']['dedup_key'] for e in events]}"
    alarm = error_alarms[0]
    assert {
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "datacontenttype",
        "data",
    } <= alarm.keys()
    assert alarm["data"]["dedup_key"] == f"{MODEL}/error:error/cusum"
    assert alarm["data"]["index"] > 2900, "the error alarm fired after the drift, not before"

    # the learner's update: promoted on held-out data, published, and served
    promoted = [d for d in learner.decisions if d.update is not None]
    assert promoted, [d.verdict or d.skipped for d in learner.decisions]
    update = promoted[0].update
    assert update.parent_version == "v1" and update.version == "v2"
    assert update.evaluation["challenger_accuracy"] > update.evaluation["champion_accuracy"]
    assert handle.served.digest == update.digest
    assert served_by.get("v2", 0) >= 200, f"predictions after the swap come from v2: {served_by}"

    updates = await read_topic(settings, settings.topics.model_updates, lambda r: len(r) >= 1, 30)
    assert json.loads(updates[0].value)["digest"] == update.digest

    # rolling metrics reached Redis under the documented keys
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    for window in ("1m", "1h"):
        metrics = client.hgetall(keys.metrics(MODEL, window))
        for field in (
            "accuracy",
            "precision",
            "recall",
            "f1",
            "event_rate_per_s",
            "latency_p50_ms",
            "latency_p95_ms",
            "latency_p99_ms",
        ):
            assert metrics.get(field), f"{window} metrics lack {field}: {metrics}"
        assert float(metrics["latency_p50_ms"]) == pytest.approx(5.0, rel=0.03)
    assert MODEL in client.smembers(keys.models())
