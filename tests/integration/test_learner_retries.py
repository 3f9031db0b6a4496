"""A refused update is tried again on newer rows while its alarm stays open (the alarm holds its
repeats, so nothing else would trigger one), at most ``retries_while_open`` times; the alarm's
resolution ends the retries.  An open alarm that fires again (a repeat, in the open alarms the
monitoring worker keeps in Redis) starts a new update on the rows from the repeat on."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json

import redis
from aiokafka import AIOKafkaProducer

from contracts.alarms import Alarm, Resolution, encode_alarm, encode_resolution
from contracts.redis_keys import RedisKeys
from driftline.simulation import DriftingScenario
from learners.blobstore import LocalBlobStore
from learners.policy import PolicySet, UpdatePolicy
from learners.registry import ModelRegistry
from learners.worker import LearnerWorker
from streams.lifecycle import AlarmBook
from streams.monitor import LabelledSample
from tests.integration.conftest import running, wait_until


def _write_rows(registry, model_id, scenario, n, t0):
    key = registry.keys.labelled(model_id)
    for i in range(n):
        features, truth = scenario.sample("noisy_labels")  # nothing a candidate can win on
        sample = LabelledSample(model_id, "v1", f"r{t0 + i}", t0 + i, features, "0", truth, t0 + i)
        registry.client.lpush(key, json.dumps(sample.to_dict()))


async def _learner(settings, tmp_path, model_id, retries, update_on_repeat=True):
    client = redis.Redis.from_url(settings.redis_url)
    registry = ModelRegistry(client, RedisKeys(settings.key_prefix), LocalBlobStore(tmp_path))
    scenario = DriftingScenario(seed=5)
    version = registry.register(model_id, scenario.train_champion(n=1500))
    registry.promote(model_id, version.version)
    policy = UpdatePolicy(
        triggers={"error": "retrain"},
        min_labelled=200,
        bake_samples=0,
        cooldown_s=0.0,
        retries_while_open=retries,
        update_on_repeat=update_on_repeat,
    )
    learner = LearnerWorker(
        settings, PolicySet(UpdatePolicy(triggers={}), {model_id: policy}), registry, poll_s=0.05
    )
    return registry, scenario, learner


async def _send(settings, *payloads, model_id):
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_list, acks="all")
    await producer.start()
    try:
        for payload in payloads:
            await producer.send_and_wait(settings.topics.alarms, payload, key=model_id.encode())
    finally:
        await producer.stop()


def _alarm(model_id: str) -> Alarm:
    return Alarm(model_id, "v1", "error", "error", "cusum", 1.3, 1.0, {}, "critical", 1000.0, 2000)


def _outcomes(learner, model_id):
    return [(d.trigger, d.outcome) for d in learner.decisions if d.model_id == model_id]


@contextlib.asynccontextmanager
async def _refused_first(settings, tmp_path, model_id, **policy):
    """A running learner with a champion and 250 labelled rows from event time 1000 on, that
    has had an error alarm and refused its update (the scenario's candidate cannot beat the
    champion): yields (registry, scenario, learner, alarm) a moment after that decision."""
    registry, scenario, learner = await _learner(settings, tmp_path, model_id, **policy)
    alarm = _alarm(model_id)
    _write_rows(registry, model_id, scenario, 250, 1000)
    async with running(learner):
        await _send(settings, encode_alarm(alarm, "/test"), model_id=model_id)
        await wait_until(lambda: len(_outcomes(learner, model_id)) >= 1, 120, "the first decision")
        await asyncio.sleep(0.5)
        yield registry, scenario, learner, alarm


async def test_a_refused_update_is_retried_on_newer_rows_while_its_alarm_is_open(
    settings, tmp_path
):
    model_id = "retry-open"
    async with _refused_first(settings, tmp_path, model_id, retries=2) as opened:
        registry, scenario, learner, alarm = opened
        assert _outcomes(learner, model_id) == [(alarm.dedup_key, "rejected")]
        assert learner._busy(model_id)  # the retry waits for rows newer than those it used
        _write_rows(registry, model_id, scenario, 250, 1250)
        await wait_until(lambda: len(_outcomes(learner, model_id)) >= 2, 120, "the first retry")
        _write_rows(registry, model_id, scenario, 250, 1500)
        await wait_until(lambda: len(_outcomes(learner, model_id)) >= 3, 120, "the second retry")
        _write_rows(registry, model_id, scenario, 250, 1750)
        await asyncio.sleep(2.0)  # no third retry: retries_while_open = 2
    assert _outcomes(learner, model_id) == [
        (alarm.dedup_key, "rejected"),
        (f"{alarm.dedup_key} (still open: retry 1)", "rejected"),
        (f"{alarm.dedup_key} (still open: retry 2)", "rejected"),
    ]
    # each retry waited for 250 newer rows and learnt from every row since the alarm
    windows = [r["verdict"]["n_holdout"] for r in registry.rejections(model_id)][::-1]
    assert windows == [75, 150, 225]


async def test_the_alarm_s_resolution_ends_its_retries(settings, tmp_path):
    model_id = "retry-resolved"
    async with _refused_first(settings, tmp_path, model_id, retries=3) as opened:
        registry, scenario, learner, alarm = opened
        assert model_id in learner._retries or learner._busy(model_id)
        resolution = Resolution(alarm, 1300.0, 0, "back to baseline", 0)
        await _send(settings, encode_resolution(resolution, "/test"), model_id=model_id)
        await wait_until(lambda: len(_outcomes(learner, model_id)) >= 2, 60, "the resolution")
        _write_rows(registry, model_id, scenario, 250, 1250)
        await asyncio.sleep(2.0)
    assert _outcomes(learner, model_id) == [
        (alarm.dedup_key, "rejected"),
        (f"{alarm.dedup_key} (still open: retry 1)", "skipped"),
    ]
    assert "its alarm resolved" in learner.decisions[-1].detail


def _open_with_repeat(registry, alarm: Alarm, repeat_time: float) -> None:
    """The model's open alarms in Redis as the monitoring worker writes them (its alarm book's
    snapshot, JSON per dedup key) after the alarm's detector fired again at ``repeat_time``."""
    book = AlarmBook()
    book.open(alarm)
    assert book.open(dataclasses.replace(alarm, event_time=repeat_time)) is None  # a repeat
    key = registry.keys.open_alarms(alarm.model_id)
    for dedup_key, entry in book.snapshot().items():
        registry.client.hset(key, dedup_key, json.dumps(entry, separators=(",", ":")))


async def test_an_open_alarm_that_fires_again_starts_a_new_update_on_rows_from_then_on(
    settings, tmp_path
):
    model_id = "repeat-open"
    async with _refused_first(settings, tmp_path, model_id, retries=0) as opened:
        registry, scenario, learner, alarm = opened
        await asyncio.sleep(1.0)  # idle and following: nothing new in Redis, nothing starts
        assert _outcomes(learner, model_id) == [(alarm.dedup_key, "rejected")]
        _open_with_repeat(registry, alarm, 5000.0)
        _write_rows(registry, model_id, scenario, 250, 5000)
        await wait_until(lambda: len(_outcomes(learner, model_id)) >= 2, 120, "the update")
        await asyncio.sleep(1.5)  # the same repeat starts nothing more
    again = f"{alarm.dedup_key} (fired again while open: repeat 1)"
    assert _outcomes(learner, model_id) == [(alarm.dedup_key, "rejected"), (again, "rejected")]
    first, second = registry.rejections(model_id)[::-1][:2]
    assert (first["trigger"], second["trigger"]) == (alarm.dedup_key, again)
    # the second update read the 250 rows from the repeat on, not the 500 from the alarm on
    assert second["verdict"]["n_holdout"] == first["verdict"]["n_holdout"] < 100


async def test_repeats_start_nothing_when_the_policy_says_so(settings, tmp_path):
    model_id = "repeat-off"
    async with _refused_first(
        settings, tmp_path, model_id, retries=0, update_on_repeat=False
    ) as opened:
        registry, scenario, learner, alarm = opened
        _open_with_repeat(registry, alarm, 5000.0)
        _write_rows(registry, model_id, scenario, 250, 5000)
        await asyncio.sleep(2.0)
    assert _outcomes(learner, model_id) == [(alarm.dedup_key, "rejected")]
