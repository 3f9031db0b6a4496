"""The whole loop on the real stack (Kafka, Redis, the monitoring worker as a subprocess):

1. traffic moves where the torch champion extrapolates badly -> error alarm -> the learner
   fine-tunes with frozen layers -> the gate passes it -> promoted -> every serving handle, a
   restarted one included, serves the new digest -> the bake window keeps it;
2. a degraded candidate gets through a gate that was switched off -> the bake window sees it
   do worse live than its predecessor -> the previous champion is back on every handle, with a
   ``rollout`` alarm that says so.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import redis

from contracts.redis_keys import RedisKeys
from driftline.simulation import DriftingScenario
from driftline.traffic import Traffic
from learners.gate import GateConfig
from learners.handle import ModelHandle
from learners.policy import PolicySet, UpdatePolicy
from learners.registry import ModelRegistry
from learners.worker import LearnerWorker
from streams.producer import EventProducer
from tests.integration.conftest import read_topic, wait_until


def _registry(settings, tmp_path) -> ModelRegistry:
    from learners.blobstore import LocalBlobStore

    client = redis.Redis.from_url(settings.redis_url)
    return ModelRegistry(client, RedisKeys(settings.key_prefix), LocalBlobStore(tmp_path / "blobs"))


def _only(model_id: str, policy: UpdatePolicy) -> PolicySet:
    """This test's policy for its model; other models' alarms (earlier tests') do nothing."""
    return PolicySet(UpdatePolicy(triggers={}), {model_id: policy})


async def _play(traffic, handles, scenario, scene, n, outcomes=None):
    for i in range(n):
        features, truth = scenario.sample(scene)
        version, correct = await traffic.serve(handles[i % len(handles)], features, truth, 5.0)
        if outcomes is not None:
            outcomes.setdefault(version, []).append(correct)
        if i % 250 == 249:
            await traffic.producer.flush()
            await asyncio.sleep(0.1)  # ~2k events/s: the worker keeps up


async def _follow(handle, settings, registry, stop):
    task = asyncio.create_task(
        handle.follow(settings.bootstrap_list, settings.topics.model_updates, stop, registry)
    )
    await asyncio.wait_for(handle.ready.wait(), 60)
    return task


async def _start(settings, registry, model_id, policy, decisions, stop, n_handles=2):
    """A learner with this policy for this model, and model servers following the updates."""
    learner = LearnerWorker(
        settings, _only(model_id, policy), registry, on_decision=decisions.append, poll_s=0.2
    )
    tasks = [asyncio.create_task(learner.run(stop))]
    handles = [ModelHandle(model_id, registry.blobs) for _ in range(n_handles)]
    for handle in handles:
        tasks.append(await _follow(handle, settings, registry, stop))
    await asyncio.wait_for(learner.ready.wait(), 60)
    return handles, tasks


async def _drift_and_fix(settings, tmp_path, model_id, task, seed, gate=None):
    """Normal traffic, then shifted traffic until every handle serves v2 and the bake window
    has judged it; returns what the checks below need."""
    scenario = DriftingScenario(seed=seed, task=task)
    registry = _registry(settings, tmp_path)
    champion = scenario.train_champion()
    v1 = registry.register(model_id, champion)
    registry.promote(model_id, v1.version)
    registry.set_reference(model_id, scenario.dataset("normal", 2000))
    policy = UpdatePolicy(
        triggers={"error": {"name": "fine_tune", "freeze": ["body.0.*"], "replay_fraction": 0.5}},
        min_labelled=600,
        bake_samples=200,
        cooldown_s=600,
        gate=gate or GateConfig(),
    )
    decisions, stop = [], asyncio.Event()
    handles, tasks = await _start(settings, registry, model_id, policy, decisions, stop)
    try:
        assert [h.version for h in handles] == ["v1", "v1"]  # started from the registry
        outcomes: dict[str, list[bool]] = {}
        async with EventProducer(settings) as producer:
            traffic = Traffic(producer, model_id, label_delay_s=0.3)
            await _play(traffic, handles, scenario, "normal", 2600)
            for _ in range(60):  # the shifted traffic, until the loop has closed
                await _play(traffic, handles, scenario, "shifted", 500, outcomes)
                if all(h.generation >= 2 for h in handles):
                    break
            assert all(h.version == "v2" for h in handles), [h.version for h in handles]
            late = ModelHandle(model_id, registry.blobs)  # a server restarted after the swap
            tasks.append(await _follow(late, settings, registry, stop))
            handles.append(late)
            for _ in range(20):  # the bake window watches v2's live traffic
                await _play(traffic, handles, scenario, "shifted", 300, outcomes)
                if any(d.outcome != "skipped" for d in decisions):
                    break
            await traffic.drain()
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    decisions = [d for d in decisions if d.model_id == model_id]
    return registry, champion, v1, handles, outcomes, decisions


async def test_alarm_fine_tune_promote_and_every_handle_serves_the_new_digest(
    settings, worker, tmp_path
):
    model_id = "loop-finetune"
    registry, champion, v1, handles, outcomes, decisions = await _drift_and_fix(
        settings, tmp_path, model_id, "binary", seed=11
    )
    decided = [d for d in decisions if d.outcome != "skipped"]
    assert [d.outcome for d in decided] == ["promoted"], [(d.outcome, d.detail) for d in decided]
    decision = decided[0]
    assert decision.trigger == f"{model_id}/error:error/cusum@{v1.version}"  # the champion's errors
    assert decision.strategy == "fine_tune"
    assert all(check["passed"] for check in decision.verdict["checks"].values())
    assert decision.bake is not None and not decision.bake["rollback"]
    skipped = [d.detail for d in decisions if d.outcome == "skipped"]
    assert all(s.startswith(("policy:", "superseded")) for s in skipped), skipped

    v2 = registry.champion(model_id)
    assert v2.version == "v2" and v2.parent == v1.digest and v2.strategy == "fine_tune"
    assert v2.data_window["rows"] >= 600 and v2.probes["privacy"]["passed"]
    assert {h.served.digest for h in handles} == {v2.digest}
    assert registry.load(v2).module.body[0].weight.equal(champion.module.body[0].weight)  # frozen

    # served accuracy on the shifted traffic: v1 before the swap, v2 after
    v1_accuracy = sum(outcomes["v1"]) / len(outcomes["v1"])
    v2_accuracy = sum(outcomes["v2"]) / len(outcomes["v2"])
    assert v2_accuracy > v1_accuracy + 0.2, (v1_accuracy, v2_accuracy)

    # the update message names the blob, it does not carry it
    updates = await read_topic(settings, settings.topics.model_updates, lambda r: len(r) >= 1, 30)
    message = json.loads(updates[0].value)
    assert message["digest"] == v2.digest and message["uri"] == v2.uri
    assert len(updates[0].value) < 2048 and message["generation"] == 2


@pytest.mark.parametrize(
    ("task", "gate"),
    [
        ("multiclass", GateConfig(reference_tolerance=0.05)),
        # regression gaps are relative to the MAE: looser than a classifier's accuracy points
        ("regression", GateConfig(reference_tolerance=0.15, privacy_max_gap=0.4)),
    ],
)
async def test_multiclass_and_regression_models_close_the_loop_too(
    settings, worker, tmp_path, task, gate
):
    model_id = f"loop-{task}"
    registry, _, v1, handles, outcomes, decisions = await _drift_and_fix(
        settings, tmp_path, model_id, task, seed=21, gate=gate
    )
    decided = [d for d in decisions if d.outcome != "skipped"]
    assert [d.outcome for d in decided] == ["promoted"], [(d.outcome, d.detail) for d in decided]
    v2 = registry.champion(model_id)
    assert v2.parent == v1.digest and v2.description["task"] == task
    assert {h.served.digest for h in handles} == {v2.digest}
    if task == "regression":
        assert decided[0].verdict["metric"] == "neg_mae"
    v1_hits = sum(outcomes["v1"]) / len(outcomes["v1"])
    v2_hits = sum(outcomes["v2"]) / len(outcomes["v2"])
    assert v2_hits > v1_hits + 0.2, (v1_hits, v2_hits)


async def test_a_degraded_promotion_is_rolled_back_in_the_bake_window(settings, worker, tmp_path):
    model_id = "loop-rollback"
    scenario = DriftingScenario(seed=12)
    registry = _registry(settings, tmp_path)
    v1 = registry.register(model_id, scenario.train_champion())
    registry.promote(model_id, v1.version)
    gate_off = GateConfig.disabled()
    policy = UpdatePolicy(
        min_labelled=200,
        periodic_retrain_s=2.0,
        periodic_strategy={"name": "prune", "amount": 0.97},  # a much worse model
        bake_samples=200,
        cooldown_s=600,
        gate=gate_off,
    )
    decisions, stop = [], asyncio.Event()
    handles, tasks = await _start(settings, registry, model_id, policy, decisions, stop)
    try:
        async with EventProducer(settings) as producer:
            traffic = Traffic(producer, model_id, label_delay_s=0.3)
            for _ in range(80):
                await _play(traffic, handles, scenario, "normal", 300)
                # a skipped alarm (the pruned v2's score/output alarms) is no verdict: traffic
                # goes on until the bake window has its rows
                if any(d.model_id == model_id and d.outcome != "skipped" for d in decisions):
                    break
            await traffic.drain()
        await wait_until(lambda: all(h.generation >= 3 for h in handles), 30, "the rollback")
        await wait_until(
            lambda: any("rollout" in d.detail for d in decisions), 30, "the rollout alarm read"
        )
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    mine = [d for d in decisions if d.model_id == model_id]
    decided = [d for d in mine if d.outcome != "skipped"]
    assert [d.outcome for d in decided] == ["rolled_back"], [(d.outcome, d.detail) for d in mine]
    # the learner reads its own rollout alarm too, and its policy never acts on one (the
    # pruned v2's outputs also moved against v1's baseline: score/output alarms, not triggers)
    skipped = {d.detail for d in mine if d.outcome == "skipped"}
    assert "policy: critical rollout alarms trigger no update" in skipped
    # an error alarm of v2 raised while its bake window runs waits behind it and is superseded
    assert all(detail.startswith(("policy:", "superseded")) for detail in skipped), skipped
    bake = decided[0].bake
    assert bake["rollback"] and bake["new_error"] > bake["previous_error"] + 0.05
    assert registry.champion(model_id).digest == v1.digest
    assert all(h.served.digest == v1.digest and h.version == "v1" for h in handles)
    history = [e["action"] for e in registry.history(model_id)]
    assert history[:2] == ["rolled_back", "promoted"]

    alarms = await read_topic(
        settings, settings.topics.alarms, lambda r: any(b'"rollout"' in x.value for x in r), 30
    )
    rollout = [json.loads(r.value) for r in alarms if b'"rollout"' in r.value]
    assert rollout, "no rollout alarm on the alarms topic"
    data = rollout[0]["data"]
    assert data["model"] == model_id and data["severity"] == "critical"
    assert data["window"]["rolled_back_to"] == "v1"
