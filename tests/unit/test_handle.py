"""ModelHandle: any adapter, verified loads, forward-only generations, swaps under load, shadow."""

from __future__ import annotations

import threading
import time

import pytest

from contracts.updates import ModelUpdate
from learners.adapters import LinearAdapter
from learners.blobstore import LocalBlobStore
from learners.handle import ModelHandle, NoModelServing
from tests.unit.learner_fixtures import classification, river_model, torch_model


@pytest.fixture()
def store(tmp_path):
    return LocalBlobStore(tmp_path)


def publish(store, model, generation, model_id="m", action="promote"):
    uri = store.put(model.to_bytes())
    return ModelUpdate(
        model_id, f"v{generation}", model.digest(), uri, model.kind, generation, action=action
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch_model(),
        lambda: river_model(),
        lambda: LinearAdapter(["a", "b", "c"], [1, 0, 0]),
    ],
)
def test_any_adapter_serves_through_a_handle(store, make):
    model = make()
    model.fit(classification(300))
    handle = ModelHandle("m", store)
    assert handle.apply(publish(store, model, 1))
    version, prediction, confidence = handle.predict({"a": 1.0, "b": 5.0, "c": -1.0})
    assert version == "v1" and prediction in ("0", "1") and 0.5 <= confidence <= 1.0


def test_a_handle_without_a_model_says_how_to_get_one(store):
    with pytest.raises(NoModelServing, match="driftline models register m"):
        ModelHandle("m", store).predict({"a": 1.0})


def test_generations_only_move_forward(store):
    handle = ModelHandle("m", store)
    assert handle.apply(publish(store, LinearAdapter(["a"], [1.0]), 2))
    assert not handle.apply(publish(store, LinearAdapter(["a"], [-1.0]), 1))  # older
    assert not handle.apply(publish(store, LinearAdapter(["a"], [-2.0]), 2))  # same
    assert handle.version == "v2" and handle.history == ["v2"]


def test_a_tampered_or_foreign_update_is_refused_and_counted(store):
    handle = ModelHandle("m", store)
    good = publish(store, LinearAdapter(["a"], [1.0]), 1)
    other = publish(store, LinearAdapter(["a"], [2.0]), 2)
    lying = ModelUpdate("m", "v2", good.digest, other.uri, "linear", 2)  # digest of another blob
    assert not handle.apply(lying)
    assert not handle.apply(publish(store, LinearAdapter(["a"], [1.0]), 3, model_id="other"))
    assert handle.rejected == 2 and handle.swaps == 0


def test_swaps_under_load_never_fail_a_prediction(store):
    updates = []
    for g in range(1, 41):
        model = torch_model(seed=g)
        updates.append(publish(store, model, g))
    handle = ModelHandle("m", store)
    handle.apply(updates[0])
    stop, errors, served = threading.Event(), [], []

    def serve():
        while not stop.is_set():
            try:
                version, _prediction, _ = handle.predict({"a": 0.1, "b": 5.0, "c": -1.0})
                served.append(version)
            except Exception as exc:  # the test's point: there are none
                errors.append(exc)

    threads = [threading.Thread(target=serve) for _ in range(4)]
    for t in threads:
        t.start()
    for update in updates[1:]:
        handle.apply(update)
        time.sleep(0.002)
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert handle.swaps == 40 and handle.version == "v40"
    assert len(set(served)) > 5  # predictions really ran across many swaps


def test_shadow_scores_beside_the_champion_and_reports(store):
    champion = LinearAdapter(["a", "b", "c"], [1.0, 0.0, 0.0])
    candidate = LinearAdapter(["a", "b", "c"], [-1.0, 0.0, 0.0])  # always disagrees
    handle = ModelHandle("m", store)
    handle.apply(publish(store, champion, 1))
    shadow = handle.load(publish(store, candidate, 0, action="shadow"))
    handle.set_shadow(shadow)
    data = classification(200, seed=4)
    for i, row in enumerate(data.X):
        handle.predict(dict(zip("abc", map(float, row), strict=True)), request_id=f"r{i}")
    deadline = time.monotonic() + 5
    while handle.shadow_report()["scored"] < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    for i, label in enumerate(data.y):
        handle.observe_label(f"r{i}", label)
    report = handle.shadow_report()
    assert report["scored"] == 200 and report["agreement"] == 0.0
    assert report["labelled"] == 200
    assert report["champion_accuracy"] > 0.9 and report["candidate_accuracy"] < 0.1
    assert handle.version == "v1"  # shadow never serves
    handle.clear_shadow()
    assert handle.shadow_report() is None
