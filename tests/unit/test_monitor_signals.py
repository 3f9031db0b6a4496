"""Each signal the ModelMonitor watches raises its alarm on the change it is for."""

from __future__ import annotations

import json
import random

import pytest

from contracts.events import InferenceEvent, LabelEvent
from streams.monitor import ModelMonitor


def _event(i: int, rng: random.Random, **changes) -> InferenceEvent:
    fields = {
        "features": {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)},
        "prediction": int(rng.random() < 0.3),
        "score": rng.uniform(0.7, 1.0),
        "probabilities": None,
        "latency_ms": rng.lognormvariate(2.5, 0.3),
        "event_time": 1000.0 + i / 20,  # 20 events per second
    }
    fields.update({k: v(fields) if callable(v) else v for k, v in changes.items()})
    return InferenceEvent("m", "v1", f"r{i}", **fields)


def _first_alarm(monitor: ModelMonitor, events) -> dict[str, int]:
    """Index of the first alarm per signal key."""
    first: dict[str, int] = {}
    for i, event in enumerate(events):
        for alarm in monitor.observe_inference(event).alarms:
            first.setdefault(f"{alarm.signal_kind}:{alarm.signal_name}", i)
    return first


def _stream(change, n_before: int = 3000, n_after: int = 1500, seed: int = 0):
    rng = random.Random(seed)
    return [_event(i, rng) for i in range(n_before)] + [
        _event(i, rng, **change) for i in range(n_before, n_before + n_after)
    ]


def test_quiet_traffic_raises_no_alarm():
    assert _first_alarm(ModelMonitor("m"), _stream({}, 4000, 0)) == {}


def test_latency_breaking_the_slo_pages():
    monitor = ModelMonitor("m")
    events = _stream({"latency_ms": lambda f: f["latency_ms"] * 30})
    first = _first_alarm(monitor, events)
    assert 3000 <= first["system:latency_ms"] < 3500
    assert 3000 <= first["system:log_latency_ms"] < 3100


def test_a_cusum_alarm_says_which_way_and_from_what_baseline():
    monitor = ModelMonitor("m")
    alarms = []
    for event in _stream({"latency_ms": lambda f: f["latency_ms"] * 30}):
        alarms += monitor.observe_inference(event).alarms
    (creep,) = [a for a in alarms if a.signal_name == "log_latency_ms"][:1]
    assert "mean +1 sd" in creep.window["fired"]
    assert not any(f.startswith("mean -") for f in creep.window["fired"])
    assert creep.window["baseline"]["mean"] == pytest.approx(2.5, abs=0.05)  # log of ~12 ms


def test_a_throughput_drop_is_noticed():
    rng = random.Random(1)
    events = [_event(i, rng) for i in range(6000)]
    t = events[-1].event_time
    for i in range(6000, 7000):  # 4 events per second instead of 20
        t += 0.25
        events.append(_event(i, rng, event_time=t))
    first = _first_alarm(ModelMonitor("m"), events)
    assert 6000 <= first["system:throughput"] < 6100


def test_broken_probabilities_and_low_confidence_are_rates_with_alarms():
    monitor = ModelMonitor("m")

    def probs(fields):  # a bug upstream: every third response is not normalised
        return {"0": 0.5, "1": 0.9} if random.random() < 0.3 else {"0": 0.2, "1": 0.8}

    random.seed(4)
    events = _stream({"probabilities": probs, "score": lambda f: f["score"] - 0.3})
    first = _first_alarm(monitor, events)
    assert 3000 <= first["rule:probabilities_sum_to_one"] < 3100
    assert 3000 <= first["output:low_confidence"] < 3200
    assert monitor.counts["rule_violations.probabilities_sum_to_one"] > 300


def test_all_features_moving_a_little_is_a_data_drift_alarm():
    def nudge(fields):
        return {name: value + 0.3 for name, value in fields["features"].items()}

    monitor = ModelMonitor("m")
    alarms = []
    for event in _stream({"features": nudge}):
        alarms += monitor.observe_inference(event).alarms
    data = [a for a in alarms if a.signal_kind == "data" and a.detector == "feature_drift"]
    assert 3000 < data[0].index <= 3600  # index: rows seen when the alarm was raised
    assert {f["feature"] for f in data[0].window["features_drifted"]} <= {"a", "b"}
    assert data[0].window["features_drifted"], "the alarm names the features that moved"


def test_probing_with_odd_inputs_is_a_security_alarm():
    rng = random.Random(9)

    def probe(fields):
        if rng.random() < 0.1:  # one request in ten is far outside normal traffic
            return {"a": rng.choice([-1, 1]) * 8.0, "b": rng.choice([-1, 1]) * 8.0}
        return fields["features"]

    first = _first_alarm(ModelMonitor("m"), _stream({"features": probe}))
    assert 3000 <= first["security:input_outliers"] < 3200


def test_predicted_class_mix_changes():
    random.seed(6)
    first = _first_alarm(
        ModelMonitor("m"), _stream({"prediction": lambda f: int(random.random() < 0.6)})
    )
    assert 3000 <= first["output:predicted_class"] < 3600


def test_accuracy_drop_is_estimated_before_labels_arrive():
    rng = random.Random(5)
    monitor = ModelMonitor("m")
    for i in range(1500):  # labelled traffic calibrates the confidence
        event = _event(i, rng)
        monitor.observe_inference(event)
        correct = rng.random() < event.score
        label = event.prediction if correct else 1 - event.prediction
        monitor.observe_label(LabelEvent("m", event.request_id, label, event.event_time + 1))
    assert monitor.performance.detectors["cbpe"].calibrated
    later = [_event(i, rng) for i in range(1500, 3000)]
    later += [_event(i, rng, score=lambda f: f["score"] - 0.25) for i in range(3000, 3600)]
    first = _first_alarm(monitor, later)  # no labels from here on
    assert 1500 <= first["performance:estimated_accuracy"] < 2100


def test_checkpoint_covers_every_signal():
    monitor = ModelMonitor("m")
    _first_alarm(monitor, _stream({}, 2500, 0))
    saved = json.loads(json.dumps(monitor.checkpoint()))
    resumed = ModelMonitor("m")
    resumed.restore(saved)
    versioned = {key for signals in saved["versions"].values() for key in signals}
    assert set(saved["signals"]) | versioned == {s.key for s in monitor.signals()}
    assert versioned == {
        "score:score",
        "error:error",
        "output:predicted_class",
        "output:low_confidence",
        "performance:estimated_accuracy",
    }
    assert resumed.checkpoint() == monitor.checkpoint()


def _labelled_events(monitor, version, n, start, error_rate, rng):
    """n predictions by ``version`` with labels; wrong with probability ``error_rate``."""
    alarms = []
    for i in range(start, start + n):
        event = InferenceEvent(
            "m", version, f"r{i}", float(i), {"x": rng.gauss(0, 1)}, 1, score=0.9
        )
        alarms += monitor.observe_inference(event).alarms
        truth = 0 if rng.random() < error_rate else 1
        alarms += monitor.observe_label(LabelEvent("m", f"r{i}", truth, float(i))).alarms
    return [a for a in alarms if a.signal_kind == "error"]


def test_canary_traffic_alternating_versions_never_resets_the_error_detector():
    """Regression test: every version change reset the output detectors, so canaries that
    alternate versions kept them from ever calibrating."""
    rng = random.Random(1)
    monitor = ModelMonitor("m")
    for i in range(5000):
        version = "v1" if i % 2 else "v2"
        event = InferenceEvent(
            "m", version, f"r{i}", float(i), {"x": rng.gauss(0, 1)}, 1, score=0.9
        )
        monitor.observe_inference(event)
        monitor.observe_label(LabelEvent("m", f"r{i}", 1 if rng.random() > 0.1 else 0, float(i)))
    assert set(monitor.versions) == {"v1", "v2"}
    for version in ("v1", "v2"):
        cusum = monitor.versions[version].error.detectors["cusum"]
        assert cusum.calibrated and cusum.n_seen == 2500


def test_a_worse_new_version_is_compared_with_its_predecessor_not_itself():
    """Regression test: after a swap the error detector relearned its reference from the new
    model, so a worse model quietly became the baseline."""
    rng = random.Random(2)
    monitor = ModelMonitor("m")
    assert _labelled_events(monitor, "v1", 2500, 0, 0.05, rng) == []
    alarms = _labelled_events(monitor, "v2", 1500, 2500, 0.25, rng)  # v2 is much worse
    assert alarms, "a worse v2 went unnoticed"
    assert alarms[0].model_version == "v2" and alarms[0].index < 2600  # no 2,000-value warm-up


def test_an_equally_good_new_version_raises_nothing():
    rng = random.Random(3)
    monitor = ModelMonitor("m")
    assert _labelled_events(monitor, "v1", 2500, 0, 0.05, rng) == []
    assert _labelled_events(monitor, "v2", 5000, 2500, 0.05, rng) == []


def test_a_regressor_is_watched_by_its_absolute_error_and_gets_mae_and_rmse():
    rng = random.Random(4)
    monitor = ModelMonitor("r")
    alarms = []
    for i in range(4000):
        x = rng.gauss(0, 1)
        truth = 2.0 * x + rng.gauss(0, 0.1)
        noise = 0.1 if i < 3000 else 1.0  # the regressor gets much worse at 3,000
        prediction = truth + rng.gauss(0, noise)
        event = InferenceEvent("r", "v1", f"q{i}", i / 10, {"x": x}, prediction, task="regression")
        alarms += monitor.observe_inference(event).alarms
        alarms += monitor.observe_label(LabelEvent("r", f"q{i}", truth, i / 10)).alarms
    errors = [a for a in alarms if a.signal_kind == "error"]
    assert errors and 3000 <= errors[0].index < 3100, [a.index for a in errors]
    assert not [a for a in alarms if a.signal_kind == "output"]  # no class signals on floats
    window = monitor.metrics()["1h"]
    assert window["accuracy"] is None and window["labelled"] == 4000
    assert 0.2 < window["mae"] < 0.5 and window["rmse"] > window["mae"]
    assert 0.8 < window["r2"] < 1.0  # labels vary with sd ~2, errors mostly ~0.1


def test_regression_labels_that_are_not_numbers_are_counted_not_fatal():
    monitor = ModelMonitor("r")
    monitor.observe_inference(
        InferenceEvent("r", "v1", "q1", 1.0, {"x": 1.0}, 2.5, task="regression")
    )
    out = monitor.observe_label(LabelEvent("r", "q1", "high", 2.0))
    assert out.labelled == [] and monitor.counts["labels_unusable"] == 1


def test_labels_a_day_late_still_join_by_default():
    """Regression test: the join kept predictions for 1 h of event time and no setting changed
    it, so daily business outcomes never joined (no error signal, nothing to learn from)."""
    from contracts.settings import Settings
    from streams.monitor import MonitorConfig

    monitor = ModelMonitor("m")
    for i in range(100):
        monitor.observe_inference(InferenceEvent("m", "v1", f"r{i}", 1000.0 + i, {"x": 1.0}, 1))
    late = [
        monitor.observe_label(LabelEvent("m", f"r{i}", 1, 1000.0 + i + 86_000)) for i in range(100)
    ]
    assert sum(len(out.labelled) for out in late) == 100
    short = MonitorConfig.from_settings(Settings.from_env(join_ttl_s="600"))
    assert short.join_ttl_s == 600.0


def test_an_error_rate_that_falls_is_info_not_a_critical_page():
    """Regression test: a falling error rate raised a critical alarm (a page at 3 a.m.)."""
    rng = random.Random(6)
    monitor = ModelMonitor("m")
    assert _labelled_events(monitor, "v1", 2500, 0, 0.30, rng) == []
    better = _labelled_events(monitor, "v1", 3000, 2500, 0.05, rng)
    assert better and better[0].severity == "info"
    assert any(label.startswith("rate -") for label in better[0].window["fired"])
    rng = random.Random(7)
    monitor = ModelMonitor("m")
    _labelled_events(monitor, "v1", 2500, 0, 0.05, rng)
    worse = _labelled_events(monitor, "v1", 3000, 2500, 0.30, rng)
    assert worse and worse[0].severity == "critical"
