"""UpdateJob on the real Redis: which labelled rows count, deadlines in event time, no champion.

The job's Kafka side is two callbacks; here they collect what would be published (the full
loop over Kafka is tests/integration/test_loop.py).
"""

from __future__ import annotations

import asyncio
import json

import pytest
import redis

from contracts.redis_keys import RedisKeys
from driftline.simulation import DriftingScenario
from learners.blobstore import LocalBlobStore
from learners.job import Trigger, UpdateJob
from learners.policy import UpdatePolicy
from learners.registry import ModelRegistry
from streams.monitor import LabelledSample


@pytest.fixture()
def registry(settings, tmp_path):
    client = redis.Redis.from_url(settings.redis_url)
    return ModelRegistry(client, RedisKeys(settings.key_prefix), LocalBlobStore(tmp_path))


def _write_rows(registry, model_id, scenario, scene, n, t0, label_delay, version="v1"):
    key = registry.keys.labelled(model_id)
    for i in range(n):
        features, truth = scenario.sample(scene)
        sample = LabelledSample(
            model_id, version, f"r{t0 + i}", t0 + i, features, "0", truth, t0 + i + label_delay
        )
        registry.client.lpush(key, json.dumps(sample.to_dict()))


def _job(registry, model_id, since, policy, published, strategy=None):
    async def publish(item):
        published.append(item)

    spec = strategy or {"name": "fine_tune"}
    trigger = Trigger(model_id, f"{model_id}/error:error/cusum", since, spec)
    return UpdateJob(trigger, policy, registry, publish, publish, asyncio.Event(), poll_s=0.05)


async def test_rows_labelled_after_the_alarm_count_even_when_predicted_before(registry):
    """Regression test: the learner compared the alarm's (label) time with prediction times,
    so with slow labels it never gathered enough rows."""
    model_id = "job-late-labels"
    scenario = DriftingScenario(seed=3)
    version = registry.register(model_id, scenario.train_champion(n=1500))
    registry.promote(model_id, version.version)
    alarm_time = 10_000.0
    # every prediction came 1 hour (event time) before its label; the alarm fired at a label
    _write_rows(registry, model_id, scenario, "shifted", 700, alarm_time - 3600 + 1, 3600)
    published: list = []
    policy = UpdatePolicy(min_labelled=600, bake_samples=0, deadline_event_s=60)
    decision = await asyncio.wait_for(
        _job(registry, model_id, alarm_time, policy, published).run(), 120
    )
    assert decision.outcome == "promoted", decision.detail
    assert decision.verdict["n_holdout"] >= 180
    assert published[0].action == "promote" and published[0].version == "v2"


async def test_a_slow_stream_gives_up_by_event_time_not_wall_time(registry):
    model_id = "job-deadline"
    scenario = DriftingScenario(seed=4)
    version = registry.register(model_id, scenario.train_champion(n=1500))
    registry.promote(model_id, version.version)
    _write_rows(registry, model_id, scenario, "shifted", 50, 1000.0, 0.5)  # 50 rows after the alarm
    policy = UpdatePolicy(min_labelled=300, deadline_event_s=100.0, bake_samples=0)
    job = asyncio.create_task(_job(registry, model_id, 1000.0, policy, []).run())
    await asyncio.sleep(0.5)
    assert not job.done()  # still waiting: the stream's clock has not passed the deadline
    _write_rows(registry, model_id, scenario, "shifted", 10, 1200.0, 0.5)  # the clock moves on
    decision = await asyncio.wait_for(job, 30)
    assert decision.outcome == "gave_up"
    assert "only 60 of 300 labelled rows" in decision.detail


async def test_no_champion_says_how_to_register_one(registry):
    decision = await _job(registry, "job-nobody", 0.0, UpdatePolicy(), []).run()
    assert decision.outcome == "skipped"
    assert "driftline models register job-nobody" in decision.detail


async def test_a_refused_candidate_is_recorded_with_its_checks(registry):
    model_id = "job-refused"
    scenario = DriftingScenario(seed=5)
    version = registry.register(model_id, scenario.train_champion(n=1500))
    registry.promote(model_id, version.version)
    registry.set_reference(model_id, scenario.dataset("normal", 1000))
    _write_rows(registry, model_id, scenario, "noisy_labels", 700, 5000.0, 1.0)
    decision = await asyncio.wait_for(
        _job(registry, model_id, 5000.0, UpdatePolicy(min_labelled=600), []).run(), 120
    )
    assert decision.outcome == "rejected"
    rejection = registry.rejections(model_id)[0]
    assert rejection["reason"] == decision.detail
    assert set(rejection["verdict"]["checks"]) >= {"recent", "reference", "privacy", "robustness"}
    assert registry.champion(model_id).digest == version.digest  # nothing moved
    assert len(registry.versions(model_id)) == 1  # refused candidates are not registered


async def test_a_shadow_phase_scores_the_candidate_on_live_rows_before_promotion(registry):
    model_id = "job-shadow"
    scenario = DriftingScenario(seed=6)
    version = registry.register(model_id, scenario.train_champion(n=1500))
    registry.promote(model_id, version.version)
    _write_rows(registry, model_id, scenario, "shifted", 700, 2000.0, 1.0)
    published: list = []
    policy = UpdatePolicy(min_labelled=600, bake_samples=0, shadow_samples=200)
    spec = {"name": "fine_tune", "freeze": ["body.0.*"]}
    job = asyncio.create_task(_job(registry, model_id, 2000.0, policy, published, spec).run())
    while not published:  # the candidate goes out as a shadow first
        await asyncio.sleep(0.05)
    assert published[0].action == "shadow" and published[0].generation == 0
    assert registry.aliases(model_id)["candidate"] == published[0].digest
    assert registry.champion(model_id).digest == version.digest  # not serving yet
    _write_rows(registry, model_id, scenario, "shifted", 250, 3000.0, 1.0)  # live traffic
    decision = await asyncio.wait_for(job, 120)
    assert decision.outcome == "promoted", decision.detail
    shadow = decision.shadow
    assert shadow["rows"] >= 200 and shadow["candidate"] > shadow["champion"] + 0.2
    assert 0.0 <= shadow["agreement"] < 0.9
    assert [u.action for u in published] == ["shadow", "promote"]
    assert "candidate" not in registry.aliases(model_id)  # promoted: no longer a candidate


async def test_decisions_are_bounded_in_memory_and_in_redis(settings, registry):
    from learners.job import Decision
    from learners.policy import PolicySet
    from learners.worker import DECISIONS_KEPT, LearnerWorker

    learner = LearnerWorker(settings, PolicySet(), registry, keep_decisions=5)
    for i in range(DECISIONS_KEPT + 20):
        learner._decide(Decision("job-bounded", f"t{i}", "skipped", "test"))
    assert (
        len(learner.decisions) == 5 and learner.decisions[-1].trigger == f"t{DECISIONS_KEPT + 19}"
    )
    key = registry.keys.registry("job-bounded", "decisions")
    assert registry.client.llen(key) == DECISIONS_KEPT
