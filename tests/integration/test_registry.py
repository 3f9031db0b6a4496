"""The model registry on the real Redis: content addressing, atomic alias moves, blob stores."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
import redis

from contracts.redis_keys import RedisKeys
from learners.adapters import InvalidModel, LinearAdapter
from learners.blobstore import LocalBlobStore, RedisBlobStore
from learners.registry import ModelRegistry, RegistryConflict, RegistryError
from tests.unit.learner_fixtures import classification, torch_model


@pytest.fixture()
def registry(settings, tmp_path):
    client = redis.Redis.from_url(settings.redis_url)
    return ModelRegistry(client, RedisKeys(settings.key_prefix), LocalBlobStore(tmp_path))


def test_versions_are_content_addressed_and_immutable(registry):
    model = torch_model()
    first = registry.register("reg-a", model, strategy="manual", metrics={"accuracy": 0.9})
    again = registry.register("reg-a", model.clone(), strategy="other", metrics={"accuracy": 0.1})
    assert first.digest == again.digest == model.digest()
    assert again.version == "v1" and again.strategy == "manual"  # the first record stands
    assert again.metrics == {"accuracy": 0.9}
    other = registry.register(
        "reg-a", torch_model(seed=3), parent=first.digest, strategy="fine_tune"
    )
    assert other.version == "v2" and other.parent == first.digest
    assert other.description["extra"]["factory"] == "learners.zoo:mlp"
    loaded = registry.load(registry.get("reg-a", "v2"))
    assert loaded.digest() == other.digest
    assert "reg-a" in registry.models()


def test_promote_and_rollback_move_aliases_and_generation(registry):
    a, b = LinearAdapter(["x"], [1.0]), LinearAdapter(["x"], [2.0])
    va, vb = registry.register("reg-b", a), registry.register("reg-b", b)
    first = registry.promote("reg-b", va.version)
    assert (first.generation, first.replaced) == (1, "")
    second = registry.promote("reg-b", vb.version, expected_champion=va.digest)
    assert second.generation == 2 and second.replaced == va.digest
    assert registry.aliases("reg-b")["previous"] == va.digest
    back = registry.rollback("reg-b", reason="test")
    assert back.generation == 3 and back.champion == va.digest
    assert registry.champion("reg-b").digest == va.digest
    actions = [e["action"] for e in registry.history("reg-b")]
    assert actions[:3] == ["rolled_back", "promoted", "promoted"]
    with pytest.raises(RegistryError, match=r"unknown version|no version"):
        registry.promote("reg-b", "v9")


def test_two_learners_promoting_from_the_same_champion_cannot_both_win(registry):
    """Regression test: set_champion was two writes after an unguarded read."""
    base = registry.register("reg-c", LinearAdapter(["x"], [1.0]))
    registry.promote("reg-c", base.version)
    candidates = [
        registry.register("reg-c", LinearAdapter(["x"], [float(k)])) for k in range(2, 10)
    ]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(candidates))

    def learner(version):
        barrier.wait()
        try:
            registry.promote("reg-c", version.digest, expected_champion=base.digest)
            outcomes.append("promoted")
        except RegistryConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=learner, args=(c,)) for c in candidates]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * (len(candidates) - 1) + ["promoted"]
    assert registry.generation("reg-c") == 2
    names = [v.version for v in registry.versions("reg-c")]
    assert names == [f"v{k}" for k in range(1, len(candidates) + 2)]  # no name given twice


def test_concurrent_registrations_never_share_a_version_name(registry):
    models = [LinearAdapter(["x"], [float(k)]) for k in range(20)]
    threads = [threading.Thread(target=registry.register, args=("reg-d", m)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    versions = registry.versions("reg-d")
    assert len({v.version for v in versions}) == 20 and len({v.digest for v in versions}) == 20


def test_the_redis_blob_store_holds_small_models_and_refuses_big_ones(settings):
    client = redis.Redis.from_url(settings.redis_url)
    store = RedisBlobStore(client, settings.key_prefix)
    registry = ModelRegistry(client, RedisKeys(settings.key_prefix), store)
    version = registry.register("reg-e", torch_model())
    assert version.uri.startswith("redis://")
    assert registry.load(version).digest() == version.digest
    client.set(version.uri.removeprefix("redis://"), b"tampered")
    with pytest.raises(InvalidModel, match="digest"):
        registry.load(version)
    store.max_bytes = 100
    with pytest.raises(ValueError, match="too large for the Redis blob store"):
        store.put(b"x" * 101)


def test_reference_samples_round_trip(registry):
    data = classification(300, seed=1)
    registry.set_reference("reg-f", data)
    back = registry.reference("reg-f")
    assert back.feature_names == data.feature_names and list(back.y) == list(data.y)
    assert (back.X == data.X).all()
    assert registry.reference("reg-none") is None


def test_rejections_are_recorded_with_their_reasons(registry):
    registry.record_rejection("reg-g", {"reason": "recent: gain +0.001", "strategy": "fine_tune"})
    assert registry.rejections("reg-g")[0]["reason"] == "recent: gain +0.001"


def _models_show(settings, tmp_path, model: str, *flags: str) -> str:
    """``driftline models show`` in a subprocess, as an operator runs it; its stdout."""
    env = {**os.environ, **settings.to_env(), "DRIFTLINE_BLOB_STORE": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "driftline.cli", "models", "show", model, *flags],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "250"},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_serving_handles_report_their_shadow_scores_to_the_registry(registry, settings, tmp_path):
    """A handle scoring a candidate in shadow writes its report (agreement, both models'
    accuracy on labelled requests) to the registry under its own id; `models show` shows it."""
    import json
    import time

    from learners.adapters import LinearAdapter
    from learners.handle import ModelHandle

    champion = registry.register("reg-shadow", LinearAdapter(["a"], [1.0]), strategy="manual")
    registry.promote("reg-shadow", champion.version)
    candidate = registry.register("reg-shadow", LinearAdapter(["a"], [-1.0]), strategy="retrain")
    handle = ModelHandle("reg-shadow", registry.blobs)
    handle.start_from(registry)
    assert handle.report_to(registry) == []  # no shadow: nothing to report
    handle.set_shadow(handle.load(candidate.to_update(0, "shadow")))
    for i in range(50):
        handle.predict({"a": 1.0 if i % 2 else -1.0}, request_id=f"r{i}")
    deadline = time.monotonic() + 5
    while handle.shadow_report()["scored"] < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    for i in range(50):
        handle.observe_label(f"r{i}", 1 if i % 2 else 0)
    assert handle.report_to(registry) == ["shadow"]
    report = registry.handle_reports("reg-shadow", "shadow")[handle.handle_id]
    assert report["version"] == candidate.version and report["scored"] == 50
    assert report["agreement"] == 0.0 and report["labelled"] == 50
    assert report["champion_accuracy"] == 1.0 and report["candidate_accuracy"] == 0.0
    shown = json.loads(_models_show(settings, tmp_path, "reg-shadow", "--json"))
    shown = shown["shadow_reports"][handle.handle_id]
    assert shown["candidate_accuracy"] == 0.0 and shown["scored"] == 50
    table = _models_show(settings, tmp_path, "reg-shadow")
    assert "shadow reports from serving handles" in table
    assert "0.000 / 1.000" in table  # candidate / champion accuracy
    handle.clear_shadow()


async def test_a_following_handle_reports_its_shadow_on_its_own(registry, settings):
    """follow() writes the shadow report every report_every_s while a candidate is in shadow."""
    import asyncio

    from learners.adapters import LinearAdapter
    from learners.handle import ModelHandle

    champion = registry.register("reg-follow", LinearAdapter(["a"], [1.0]), strategy="manual")
    registry.promote("reg-follow", champion.version)
    candidate = registry.register("reg-follow", LinearAdapter(["a"], [2.0]), strategy="retrain")
    handle, stop = ModelHandle("reg-follow", registry.blobs), asyncio.Event()
    task = asyncio.create_task(
        handle.follow(
            settings.bootstrap_list, settings.topics.model_updates, stop, registry, None, 0.2
        )
    )
    try:
        await asyncio.wait_for(handle.ready.wait(), 60)
        assert handle.version == champion.version
        handle.set_shadow(handle.load(candidate.to_update(0, "shadow")))
        for i in range(20):
            handle.predict({"a": 1.0}, request_id=f"f{i}")
        for _ in range(100):
            report = registry.handle_reports("reg-follow", "shadow").get(handle.handle_id)
            if report and report["scored"] == 20:
                break
            await asyncio.sleep(0.1)
        assert report and report["scored"] == 20 and report["agreement"] == 1.0
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        handle.clear_shadow()


def test_a_handle_learning_online_reports_to_the_registry_and_models_show_lists_it(
    registry, settings, tmp_path
):
    import json
    import time

    from learners.handle import ModelHandle
    from tests.unit.learner_fixtures import river_model

    model = river_model()
    data = classification(n=400, seed=4)
    model.fit(data)
    champion = registry.register("reg-online", model, strategy="manual")
    registry.promote("reg-online", champion.version)
    handle = ModelHandle("reg-online", registry.blobs)
    assert handle.start_from(registry)
    online = handle.learn_online()
    names = model.feature_names
    for i, (row, label) in enumerate(zip(data.X[:300], data.y[:300], strict=True)):
        handle.predict(dict(zip(names, map(float, row), strict=True)), f"q{i}")
        handle.observe_label(f"q{i}", label)
    deadline = time.monotonic() + 20
    while online.learned < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert handle.report_to(registry) == ["online"]
    report = registry.handle_reports("reg-online", "online")[handle.handle_id]
    assert report["version"] == champion.version and report["learned"] == 300
    assert report["serving"] == "learned" and report["online_accuracy"] is not None
    assert registry.handle_reports("reg-online", "shadow") == {}
    shown = json.loads(_models_show(settings, tmp_path, "reg-online", "--json"))
    assert shown["online_reports"][handle.handle_id]["learned"] == 300
    table = _models_show(settings, tmp_path, "reg-online")
    assert "online learning in serving handles" in table
    assert f"accuracy {report['online_accuracy']:.3f} / {report['base_accuracy']:.3f}" in table
    handle.stop_online()
    with pytest.raises(ValueError, match="unknown handle report"):
        registry.handle_reports("reg-online", "other")
