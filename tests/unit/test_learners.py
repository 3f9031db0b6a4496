from __future__ import annotations

import threading
import time

import pytest

from driftline.simulation import DriftingScenario
from learners.gate import champion_vs_challenger
from learners.handle import ModelHandle
from learners.model import InvalidModel, LinearModel
from learners.updates import ModelUpdate, decode_update


def test_gate_keeps_the_champion_when_nothing_changed():
    scenario = DriftingScenario(seed=3, drift_at=10**9)
    champion = scenario.train_champion()
    samples = [scenario.sample(i) for i in range(800)]
    _, verdict = champion_vs_challenger(champion, samples)
    assert not verdict.promote
    assert verdict.champion_accuracy > 0.85


def test_gate_promotes_a_challenger_after_concept_drift():
    scenario = DriftingScenario(seed=3, drift_at=0)
    champion = DriftingScenario(seed=4, drift_at=10**9).train_champion()
    samples = [scenario.sample(i) for i in range(400)]
    challenger, verdict = champion_vs_challenger(champion, samples)
    assert verdict.promote and challenger is not None
    assert verdict.challenger_accuracy > verdict.champion_accuracy + 0.2


def test_gate_refuses_to_judge_on_too_few_samples():
    challenger, verdict = champion_vs_challenger(LinearModel(), [({"x": 1.0}, 1)] * 20)
    assert challenger is None and not verdict.promote and "not enough" in verdict.reason


def test_update_with_tampered_content_is_rejected():
    update = ModelUpdate.for_model("m", "v2", LinearModel({"x": 1.0}))
    raw = update.to_json().replace(b'"x":1.0', b'"x":2.0')
    with pytest.raises(InvalidModel, match="digest"):
        decode_update(raw)


def test_handle_refuses_updates_for_other_models():
    handle = ModelHandle("m", LinearModel({"x": 1.0}))
    assert not handle.apply(ModelUpdate.for_model("other", "v2", LinearModel({"x": 2.0})))
    assert handle.version == "v1" and handle.rejected == 1


def test_hot_swap_under_load_never_fails_or_tears_a_prediction():
    old, new = LinearModel({"x": 1.0}, 0.0), LinearModel({"x": -1.0}, 0.0)
    expected = {"v1": old.predict_proba({"x": 2.0}), "v2": new.predict_proba({"x": 2.0})}
    handle = ModelHandle("m", old, "v1")
    errors, seen = [], set()
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                version, proba = handle.predict({"x": 2.0})
                assert proba == expected[version], "prediction mixed two models"
                seen.add(version)
            except Exception as exc:  # pragma: no cover - the assertion below reports it
                errors.append(exc)

    threads = [threading.Thread(target=serve) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(200):
        model, version = (new, "v2") if i % 2 == 0 else (old, "v1")
        assert handle.apply(ModelUpdate.for_model("m", version, model))
        time.sleep(0.002)  # let the serving threads run between swaps
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert seen == {"v1", "v2"}
    assert handle.swaps == 200
