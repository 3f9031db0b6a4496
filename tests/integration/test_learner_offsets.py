"""Regression test: the learner committed an alarm's offset when its update *started*, so a
learner that stopped mid-update lost the update.  Now the offset waits for the decision."""

from __future__ import annotations

import asyncio

import redis
from aiokafka import AIOKafkaProducer

from contracts.alarms import Alarm, encode_alarm
from contracts.redis_keys import RedisKeys
from learners.adapters import LinearAdapter
from learners.blobstore import LocalBlobStore
from learners.policy import PolicySet, UpdatePolicy
from learners.registry import ModelRegistry
from learners.worker import LearnerWorker
from tests.integration.conftest import wait_until


async def test_an_update_in_flight_when_the_learner_stops_is_redone_after_a_restart(
    settings, tmp_path
):
    model_id = "offsets-model"
    client = redis.Redis.from_url(settings.redis_url)
    registry = ModelRegistry(client, RedisKeys(settings.key_prefix), LocalBlobStore(tmp_path))
    version = registry.register(model_id, LinearAdapter(["x"], [1.0]))
    registry.promote(model_id, version.version)
    # the update waits for labelled rows that never come: it stays in flight
    policy = UpdatePolicy(triggers={"error": "retrain"}, min_labelled=500)
    policies = PolicySet(UpdatePolicy(triggers={}), {model_id: policy})

    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_list, acks="all")
    await producer.start()
    alarm = Alarm(model_id, "v1", "error", "error", "cusum", 1.2, 1.0, {}, "critical", 100.0, 2100)
    await producer.send_and_wait(
        settings.topics.alarms, encode_alarm(alarm, "/test"), key=model_id.encode()
    )
    await producer.stop()

    async def run_until_in_flight() -> LearnerWorker:
        learner = LearnerWorker(settings, policies, registry, poll_s=0.1)
        stop = asyncio.Event()
        task = asyncio.create_task(learner.run(stop))
        await wait_until(lambda: learner._busy(model_id), 60, "the update to start")
        await asyncio.sleep(1.0)  # several poll-and-commit rounds while it is in flight
        stop.set()  # the learner stops (a deploy, a crash) before the update is decided
        await asyncio.wait_for(task, 30)
        return learner

    first = await run_until_in_flight()
    assert first.offsets.in_flight() == 1
    assert not [d for d in first.decisions if d.model_id == model_id]
    # a new learner in the same consumer group gets the same alarm again and restarts the update
    second = await run_until_in_flight()
    assert second.offsets.in_flight() == 1
