"""The learner's own staleness trigger (learners/staleness.py), on the real Redis and Kafka: no
alarm comes; the champion's labelled rows, as the monitoring worker writes them, show its error
rate rising against its own first rows, and an update starts on the rows from then on."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import redis

from contracts.redis_keys import RedisKeys
from driftline.simulation import FEATURES, DriftingScenario
from learners.blobstore import LocalBlobStore
from learners.policy import PolicySet, UpdatePolicy
from learners.registry import ModelRegistry
from learners.worker import LearnerWorker
from streams.monitor import LabelledSample
from tests.integration.conftest import running, wait_until

SHIFT_AT = 1300.0  # label time of the first row of the shifted scene


def _setup(settings, tmp_path, model_id, **policy):
    client = redis.Redis.from_url(settings.redis_url)
    registry = ModelRegistry(client, RedisKeys(settings.key_prefix), LocalBlobStore(tmp_path))
    scenario = DriftingScenario(seed=11)
    champion = scenario.train_champion(n=1500)
    version = registry.register(model_id, champion)
    registry.promote(model_id, version.version)
    rules = UpdatePolicy(
        triggers={"error": "retrain"}, min_labelled=100, bake_samples=0, cooldown_s=0.0, **policy
    )
    learner = LearnerWorker(
        settings, PolicySet(UpdatePolicy(triggers={}), {model_id: rules}), registry, poll_s=0.05
    )
    return registry, scenario, champion, version.version, learner


def _serve(registry, scenario, champion, version, model_id, scene, n, t0):
    """``n`` rows of ``scene`` predicted by the champion, labelled, written as the worker does."""
    rows = [scenario.sample(scene) for _ in range(n)]
    X = np.array([[f[name] for name in FEATURES] for f, _ in rows], dtype=np.float32)
    predictions = champion.predict(X)
    key = registry.keys.labelled(model_id)
    errors = 0
    for i, ((features, truth), predicted) in enumerate(zip(rows, predictions, strict=True)):
        t = t0 + i
        sample = LabelledSample(model_id, version, f"r{t}", t, features, predicted, truth, t)
        registry.client.lpush(key, json.dumps(sample.to_dict()))
        errors += str(predicted) != str(truth)
    return errors / n


async def test_a_champion_whose_error_rate_rises_is_updated_without_any_alarm(settings, tmp_path):
    model_id = "stale-shift"
    registry, scenario, champion, v1, learner = _setup(
        settings, tmp_path, model_id, staleness_baseline_rows=200
    )
    before = _serve(registry, scenario, champion, v1, model_id, "normal", 300, 1000.0)
    after = _serve(registry, scenario, champion, v1, model_id, "shifted", 400, SHIFT_AT)
    assert after > before + 0.2, (before, after)  # the scene really hurts the champion
    async with running(learner):
        await wait_until(lambda: len(learner.decisions) >= 1, 180, "an update on staleness")
        await asyncio.sleep(1.0)  # no second one: its rows are all read by the first
    (decision,) = learner.decisions
    assert decision.trigger.startswith(f"stale: {v1}'s error rate"), decision.trigger
    # it fired within the shifted rows, soon after they began
    assert SHIFT_AT <= decision.trigger_time < SHIFT_AT + 100, decision.trigger_time
    assert decision.outcome == "promoted", decision.detail
    assert registry.champion(model_id).version != v1


async def test_a_steady_champion_or_a_policy_without_staleness_starts_nothing(settings, tmp_path):
    steady, off = "stale-steady", "stale-off"
    registry, scenario, champion, v1, learner = _setup(
        settings, tmp_path, steady, staleness_baseline_rows=200
    )
    _serve(registry, scenario, champion, v1, steady, "normal", 700, 1000.0)
    registry_off, scenario_off, champion_off, v1_off, learner_off = _setup(
        settings, tmp_path / "off", off
    )
    _serve(registry_off, scenario_off, champion_off, v1_off, off, "normal", 300, 1000.0)
    _serve(registry_off, scenario_off, champion_off, v1_off, off, "shifted", 400, SHIFT_AT)
    async with running(learner), running(learner_off):
        await wait_until(lambda: learner._baselines, 60, "the steady champion's baseline")
        await asyncio.sleep(3.0)  # many staleness checks (every 0.2 s)
    assert list(learner.decisions) == [] and list(learner_off.decisions) == []
    ((version, p0, _),) = learner._baselines.values()
    assert version == v1
    assert p0 < 0.15  # the champion is good on its own scene
