"""Online learning in the serving handle: learns each label, falls back to the published version
while the learning copy is significantly worse, restarts at a swap, refuses non-incremental
models."""

from __future__ import annotations

import time

import numpy as np
import pytest
from river import linear_model, optim, preprocessing

from learners.adapters import LinearAdapter
from learners.adapters.base import InvalidModel
from learners.adapters.river_model import RiverAdapter
from learners.handle import ModelHandle, ServedModel
from learners.online_serving import OnlineLearning
from tests.unit.learner_fixtures import river_model


def served(model, version="v1", generation=1) -> ServedModel:
    return ServedModel(version, model.digest(), generation, model)


def logistic(lr: float = 0.5) -> RiverAdapter:
    est = preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optim.SGD(lr))
    return RiverAdapter(est, "binary", ["0", "1"], ["x"])


def trained(model: RiverAdapter, sign: float, n: int = 600, seed: int = 0) -> RiverAdapter:
    """``model`` after learning the concept y = (sign * x > 0)."""
    for x in np.random.default_rng(seed).normal(size=n):
        model.learn_one({"x": float(x)}, "1" if sign * x > 0 else "0")
    return model


def feed(online: OnlineLearning, xs, sign: float, start: int = 0) -> None:
    for i, x in enumerate(xs, start):
        online.remember(f"r{i}", {"x": float(x)})
        online.learn(f"r{i}", "1" if sign * x > 0 else "0")


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.0005)


def test_a_handle_learns_each_label_in_its_thread_and_serves_what_it_learned():
    base = trained(logistic(), +1.0)
    handle = ModelHandle("m", None, served(base))
    online = handle.learn_online()
    xs = np.random.default_rng(1).normal(size=1500)
    correct_late = 0
    for i, x in enumerate(xs):  # the concept flipped: the published version is now always wrong
        version, prediction, _ = handle.predict({"x": float(x)}, f"r{i}")
        assert version == "v1"  # events keep naming the published version
        if i >= 1000:
            correct_late += prediction == ("1" if x < 0 else "0")
        handle.observe_label(f"r{i}", "1" if x < 0 else "0")
        wait_for(lambda i=i: online.learned + online.unmatched >= i + 1)
    report = handle.online_report()
    assert report["learned"] == 1500 and report["unmatched"] == 0
    assert correct_late / 500 > 0.95
    assert report["online_accuracy"] > 0.9 > 0.1 > report["base_accuracy"]
    # the published model itself never changed; a snapshot carries what was learned
    assert base.predict_one({"x": 2.0})[0] == "1"
    snapshot = handle.online_snapshot()
    assert snapshot.predict_one({"x": 2.0})[0] == "0" and snapshot.digest() != base.digest()
    handle.stop_online()
    assert handle.online_snapshot() is None
    assert handle.predict({"x": 2.0}, "after")[1] == "1"


def test_serving_falls_back_while_the_copy_is_significantly_worse_and_returns_when_level():
    base = trained(logistic(), +1.0)
    online = OnlineLearning(base=served(base), window=200, min_labels=100, start_thread=False)
    rng = np.random.default_rng(2)
    feed(online, rng.normal(size=800), -1.0)  # concept B: the copy learns it, the base cannot
    assert online.fallbacks == 0 and online.report()["serving"] == "learned"
    assert online.view.predict_one({"x": 1.5})[0] == "0"
    back = rng.normal(size=1200)
    i = 0
    while online.fallbacks == 0 and i < 400:  # concept A again: the base is right at once
        feed(online, back[i : i + 1], +1.0, start=1000 + i)
        i += 1
    assert online.fallbacks == 1, "the guard never fell back"
    assert online.report()["serving"] == "published"
    assert online.view is base  # what serves now is the published version itself
    # the copy kept learning while it was not serving, and serves again once level
    feed(online, back[i:], +1.0, start=1000 + i)
    report = online.report()
    assert report["serving"] == "learned" and report["fallbacks"] == 1
    assert online.view is not base and online.view.predict_one({"x": 1.5})[0] == "1"


def noisy_run(z: float) -> OnlineLearning:
    """30% label noise on the base's own concept, a 50-label window, no tolerance."""
    base = trained(logistic(), +1.0)
    online = OnlineLearning(
        base=served(base), window=50, min_labels=50, tolerance=0.0, z=z, start_thread=False
    )
    rng = np.random.default_rng(3)
    for i, x in enumerate(rng.normal(size=400)):
        online.remember(f"r{i}", {"x": float(x)})
        noisy = ("1" if x > 0 else "0") if rng.random() > 0.3 else ("0" if x > 0 else "1")
        online.learn(f"r{i}", noisy)
    return online


def test_the_guard_needs_a_significant_difference_not_just_a_worse_stretch():
    assert noisy_run(z=3.0).fallbacks == 0
    # the same stream with the significance test all but off flaps back and forth
    assert noisy_run(z=0.01).fallbacks >= 3


def test_a_swap_restarts_learning_from_the_new_champion():
    handle = ModelHandle("m", None, served(trained(logistic(), +1.0)))
    online = handle.learn_online()
    new = trained(logistic(), -1.0, seed=5)
    assert handle.swap(served(new, "v2", 2))
    assert online.base.version == "v2" and online.base.model is new
    assert handle.predict({"x": 2.0}, "r")[:2] == ("v2", "0")
    assert handle.online_report()["learned"] == 0


def test_a_swap_to_a_model_that_cannot_learn_online_stops_learning():
    handle = ModelHandle("m", None, served(trained(logistic(), +1.0)))
    handle.learn_online()
    assert handle.swap(served(LinearAdapter(["x"], [-1.0]), "v2", 2))
    assert handle.online_report() is None
    assert handle.predict({"x": 2.0})[:2] == ("v2", "0")


def test_only_incremental_models_learn_online():
    handle = ModelHandle("m", None, served(LinearAdapter(["x"], [1.0])))
    with pytest.raises(InvalidModel, match="cannot learn one label at a time"):
        handle.learn_online()
    assert handle.online_report() is None


def test_labels_without_a_remembered_request_are_counted_and_memory_is_bounded():
    online = OnlineLearning(base=served(trained(logistic(), +1.0)), keep=10, start_thread=False)
    for i in range(25):
        online.remember(f"r{i}", {"x": 1.0})
    online.learn("r0", "1")  # evicted: only the newest 10 are kept
    online.learn("unknown", "1")
    online.learn("r24", "1")
    report = online.report()
    assert (report["unmatched"], report["learned"]) == (2, 1)


def test_regression_learns_online_and_reports_mean_absolute_error():
    model = river_model("regression")
    names = model.feature_names
    online = OnlineLearning(base=served(model), start_thread=False)
    rng = np.random.default_rng(4)
    for i in range(600):
        x = rng.normal(size=len(names))
        online.remember(f"r{i}", dict(zip(names, map(float, x), strict=True)))
        online.learn(f"r{i}", float(3 * x[0] - x[1]))
    report = online.report()
    assert report["base_mae"] > 1.0 > report["online_mae"]
    assert report["serving"] == "learned"


def test_options_are_checked():
    base = served(trained(logistic(), +1.0))
    for bad in ({"window": 0}, {"tolerance": 1.0}, {"z": 0.0}, {"publish_every": 0}):
        with pytest.raises(ValueError):
            OnlineLearning(base=base, start_thread=False, **bad)


def test_a_prediction_between_a_swap_and_the_restart_is_answered_by_the_new_champion():
    handle = ModelHandle("m", None, served(trained(logistic(), +1.0)))
    handle.learn_online()
    handle._served = served(trained(logistic(), -1.0, seed=5), "v2", 2)  # restart not yet run
    assert handle.predict({"x": 2.0}, "r")[:2] == ("v2", "0")


def test_a_label_that_cannot_be_learned_is_counted_and_the_thread_goes_on():
    model = river_model("regression")
    handle = ModelHandle("m", None, served(model))
    online = handle.learn_online()
    features = dict.fromkeys(model.feature_names, 1.0)
    handle.predict(features, "bad")
    handle.observe_label("bad", "not a number")
    handle.predict(features, "good")
    handle.observe_label("good", 2.5)
    wait_for(lambda: online.learned == 1)
    assert online.failed == 1
    handle.stop_online()
    assert not online._labels.thread.join(timeout=5) and not online._labels.thread.is_alive()
