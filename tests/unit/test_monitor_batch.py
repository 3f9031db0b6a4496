"""The batch path (``observe_inferences``) is the one-by-one path, only faster.

Each scenario runs the same traffic through two monitors, one event at a time and in batches of
random sizes, and requires the same alarms (in order, with their positions), counts, windows,
labelled samples and checkpoints (floats up to rounding: vectorised sums add in another order).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict

import numpy as np
import pytest

from contracts.columnar import encode_columns
from contracts.columns import EventColumns
from contracts.envelopes import decode_message
from contracts.events import InferenceEvent, LabelEvent
from detectors import CUSUM, PageHinkley
from streams.monitor import ModelMonitor, MonitorConfig
from streams.signals import Signal, feed_columns_if_quiet
from tests.unit.state_compare import close_states

Traffic = list[tuple[str, InferenceEvent | LabelEvent]]


def _binary(rng: random.Random, i: int) -> InferenceEvent:
    drift = i >= 2600
    features = {f"f{j}": rng.gauss(1.5 * drift * (j == 3), 1) for j in range(6)}
    if i % 97 == 0:
        features.pop("f5")  # an incomplete row now and then: the mixed-layout path
    if i % 131 == 0:
        features = dict(reversed(list(features.items())))  # same names, another order
    version = "v2" if (i > 1800 and i % 3 == 0) else "v1"  # a canary beside the champion
    return InferenceEvent(
        "m",
        version,
        f"r{i}",
        1000.0 + i * 0.5,
        features,
        int(rng.random() < 0.4),
        score=rng.uniform(0.5, 1.0) if i % 50 else None,
        latency_ms=rng.lognormvariate(2.0 + 1.5 * drift, 0.3) if i % 17 else None,
    )


def _unscored(rng: random.Random, i: int) -> InferenceEvent:
    """A classifier that sends its classes alone: no score, no probabilities."""
    drift = i >= 2600
    features = {f"f{j}": rng.gauss(1.5 * drift * (j == 1), 1) for j in range(4)}
    prediction = int(rng.random() < (0.3 if i < 3000 else 0.6))
    return InferenceEvent("m", "v1", f"r{i}", 3000.0 + i, features, prediction)


def _multiclass(rng: random.Random, i: int) -> InferenceEvent:
    p = [rng.random() for _ in range(3)]
    total = sum(p) if i % 211 else sum(p) * 2  # a broken rule now and then
    probabilities = {c: v / total for c, v in zip("abc", p, strict=True)}
    shifted = i >= 2500
    return InferenceEvent(
        "m",
        "v1",
        f"r{i}",
        5000.0 + i,
        {"x": rng.gauss(0, 1), "y": rng.expovariate(1.0 + shifted)},
        max(probabilities, key=probabilities.get) if not shifted or i % 2 else "c",
        probabilities=probabilities,
        latency_ms=rng.uniform(5, 15),
    )


def _regression(rng: random.Random, i: int) -> InferenceEvent:
    x = rng.gauss(1.0 * (i >= 2800), 1)
    return InferenceEvent(
        "m",
        "v1",
        f"r{i}",
        9000.0 + i * 2,
        {"x": x, "z": rng.gauss(0, 1)},
        2.0 * x + rng.gauss(0, 0.1),
        latency_ms=rng.uniform(1, 3) * (1 + 2 * (i >= 3500)),
        task="regression",
    )


def _traffic(make: Callable[[random.Random, int], InferenceEvent], seed: int) -> Traffic:
    """Inferences, with labels for most of them: usually later, sometimes first."""
    rng = random.Random(seed)
    traffic: Traffic = []
    late: list[LabelEvent] = []
    for i in range(4200):
        event = make(rng, i)
        truth: object
        if event.task == "regression":
            truth = float(event.prediction) + rng.gauss(0, 0.1 + 0.5 * (i > 3000))
        elif rng.random() < 0.15 + 0.3 * (i > 3000):
            truth = "other" if isinstance(event.prediction, str) else 1 - int(event.prediction)
        else:
            truth = event.prediction
        label = LabelEvent("m", event.request_id, truth, event.event_time + 3.0)
        if i % 53 == 0:
            traffic.append(("label", label))  # the label comes before its prediction
        elif i % 4:
            late.append(label)
        traffic.append(("inference", event))
        if len(late) >= 25:
            traffic += [("label", lab) for lab in late]
            late.clear()
    return traffic


def _one_by_one(monitor: ModelMonitor, traffic: Traffic) -> list[tuple[int, dict, dict | None]]:
    seen = []
    for position, (kind, event) in enumerate(traffic):
        out = (
            monitor.observe_inference(event)
            if kind == "inference"
            else monitor.observe_label(event)
        )
        seen += [(position, asdict(alarm), None) for alarm in out.alarms]
        seen += [(position, {}, sample.to_dict()) for sample in out.labelled]
    return _ordered(seen)


def _batched(monitor: ModelMonitor, traffic: Traffic, seed: int, columnar: bool = False) -> list:
    """``columnar``: each run of inferences with one layout as a columnar envelope decodes it
    (EventColumns), as the worker gets them."""
    rng = random.Random(seed)
    seen, position = [], 0
    while position < len(traffic):
        kind = traffic[position][0]
        end = position
        size = rng.choice([1, 2, 7, 50, 333, 1200])
        while end < len(traffic) and traffic[end][0] == kind and end - position < size:
            end += 1
        chunk = [event for _, event in traffic[position:end]]
        if kind == "inference" and columnar:
            with suppress(ValueError):  # raised where the events differ in layout: a list
                chunk = decode_message(encode_columns(chunk), "inference").events
            COLUMNAR_RUNS[isinstance(chunk, EventColumns)] += 1
        if kind == "inference":
            out = monitor.observe_inferences(chunk)
        else:
            out = monitor.observe_labels(chunk)
        seen += [(position + i, asdict(alarm), None) for i, alarm in out.alarms]
        seen += [(position + i, {}, sample.to_dict()) for i, sample in out.labelled]
        position = end
    return _ordered(seen)


def _ordered(seen: list) -> list:
    """Alarms in the order raised; labelled samples after them (the order the runtime reads)."""
    alarms = [(p, a) for p, a, s in seen if s is None]
    samples = [(p, s) for p, _, s in seen if s is not None]
    return alarms + samples


RULES = (
    {"name": "probabilities_sum_to_one", "kind": "sum_to_one", "field": "probabilities"},
    {"name": "confident", "kind": "range", "field": "score", "low": 0.55},
    {"name": "f0_in_range", "kind": "range", "field": "features.f0", "low": -2.5, "high": 2.5},
    {"name": "x_in_range", "kind": "range", "field": "features.x", "high": 2.0},
    {"name": "timed", "kind": "present", "field": "latency_ms"},
    {"name": "known_class", "kind": "one_of", "field": "prediction", "values": [0, 1, "a", "b"]},
)
SCENARIOS = {
    "binary": _binary,
    "unscored": _unscored,
    "multiclass": _multiclass,
    "regression": _regression,
}


COLUMNAR_RUNS = Counter()


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize(("seed", "columnar"), [(0, False), (1, False), (2, True), (3, True)])
def test_batches_equal_one_event_at_a_time(scenario, seed, columnar):
    traffic = _traffic(SCENARIOS[scenario], seed)
    # a short cooldown, so cooldowns are crossed in batches; a rule of each kind
    config = MonitorConfig(alarm_cooldown=40, output_rules=RULES)
    one, many = ModelMonitor("m", config), ModelMonitor("m", config)
    expected = _one_by_one(one, traffic)
    COLUMNAR_RUNS.clear()
    got = _batched(many, traffic, seed, columnar)
    if columnar and scenario in ("binary", "unscored"):  # others have probabilities or a task
        assert COLUMNAR_RUNS[True] > 50, COLUMNAR_RUNS
    alarms = [a for a in expected if "signal_kind" in a[1]]
    assert len(alarms) >= 3, "the scenario must raise alarms, or it tests nothing about them"
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert close_states(mine, theirs), f"{mine} != {theirs}"
    assert many.counts == one.counts
    assert sum(v for k, v in one.counts.items() if k.startswith("rule_violations.")) > 100
    assert close_states(many.metrics(), one.metrics())
    assert close_states(
        json.loads(json.dumps(many.checkpoint())), json.loads(json.dumps(one.checkpoint()))
    )


@pytest.mark.parametrize("columnar", [False, True])
def test_batches_equal_one_event_at_a_time_through_re_learnt_references(columnar):
    """Feature references re-learnt every few hundred values (the default is 10,000): the
    batch path cuts its blocks where they change hands and advances the features together
    through it (shadows learning, calibrated in one call, taking over), with the same alarms,
    counts and states as one event at a time."""
    traffic = _traffic(_binary, 5)
    config = MonitorConfig(
        alarm_cooldown=40,
        feature_detectors=(("cusum", {"reference_size": 200}),),
        vector_detectors=(
            ("feature_drift", {"reference_size": 200, "window": 100}),
            ("mahalanobis", {"reference_size": 200, "window": 100}),
        ),
        security_detectors=(("input_outlier_rate", {"reference_size": 200}),),
        input_refresh_every=300,
    )
    one, many = ModelMonitor("m", config), ModelMonitor("m", config)
    expected = _one_by_one(one, traffic)
    got = _batched(many, traffic, 5, columnar)
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert close_states(mine, theirs), f"{mine} != {theirs}"
    assert many.counts == one.counts
    refreshes = [s.detectors["cusum"].refreshes for s in many.features.values()]
    assert min(refreshes) >= 5, refreshes
    assert refreshes == [s.detectors["cusum"].refreshes for s in one.features.values()]
    vector = many.data.detectors.values()  # the outlier rate's own reference takes 2,000
    assert min(d.refreshes for d in vector) >= 2, [d.refreshes for d in vector]
    assert close_states(
        json.loads(json.dumps(many.checkpoint())), json.loads(json.dumps(one.checkpoint()))
    )


def test_a_batch_reports_the_position_of_each_alarm_and_sample():
    traffic = [event for kind, event in _traffic(_binary, 5) if kind == "inference"]
    labels = [LabelEvent("m", e.request_id, e.prediction, e.event_time + 1) for e in traffic]
    monitor = ModelMonitor("m")
    out = monitor.observe_inferences(traffic)
    assert out.alarms
    for position, alarm in out.alarms:
        assert alarm.event_time == traffic[position].event_time
    joined = monitor.observe_labels(labels[:10])
    assert [p for p, _ in joined.labelled] == list(range(10))
    assert [s.request_id for _, s in joined.labelled] == [e.request_id for e in traffic[:10]]


@pytest.mark.parametrize("cooldown", [0, 1, 5, 40])
def test_signal_feed_many_applies_the_cooldown_as_feed_does(cooldown):
    """Detectors that alarm often, two per signal, sometimes on the same value: the cooldown
    holds back the same alarms whether values come one by one or in chunks."""

    def signal() -> Signal:
        return Signal(
            "feature",
            "x",
            {
                "ph": PageHinkley(min_instances=5, threshold=2.0, delta=0.0),
                "cusum": CUSUM(shifts=(1.0,), target_arl=20.0, reference_size=64),
            },
        )

    rng = random.Random(cooldown)
    values = [rng.gauss(0, 1) + 4 * ((i // 150) % 2) for i in range(3000)]
    one, many = signal(), signal()
    expected = [
        (i, d.name, d.result.index) for i, x in enumerate(values) for d in one.feed(x, cooldown)
    ]
    got, start = [], 0
    while start < len(values):
        chunk = values[start : start + rng.choice([1, 3, 17, 200])]
        due = many.feed_many(chunk, cooldown, lambda j, d: (d.name, d.result.index))
        got += [(start + j, name, index) for j, (name, index) in due]
        start += len(chunk)
    assert len({i for i, _, _ in expected}) > 20  # many alarms, some held back
    assert got == expected
    assert many.cooldown_left == one.cooldown_left


@pytest.mark.parametrize("cooldown", [0, 40, 150])  # beyond the 64 values to re-learn
def test_signals_fed_together_where_quiet_keep_the_cooldown_and_alarms(cooldown):
    """Feature signals advanced together where their block is quiet (the rest fed alone, as
    the batch path does) raise the same alarms, keep the same cooldown and the same detector
    states (up to rounding: the vectorised path adds in another order) as feeding every value
    one by one."""

    def signals() -> list[Signal]:
        return [
            Signal("feature", f"x{j}", {"cusum": CUSUM(target_arl=300.0, reference_size=64)})
            for j in range(3)
        ]

    rng = np.random.default_rng(cooldown)
    steps = rng.normal(size=(4000, 3)) + 3.0 * ((np.arange(4000)[:, None] // 400) % 2)
    one, many = signals(), signals()
    expected = [
        (i, j)
        for i in range(len(steps))
        for j in range(3)
        for _ in one[j].feed(steps[i, j], cooldown)
    ]
    got, start, together = [], 0, 0
    while start < len(steps):
        block = steps[start : start + int(rng.choice([1, 3, 17, 90]))]
        quiet = feed_columns_if_quiet(many, block)
        together += int(quiet.sum())
        for j in np.flatnonzero(~quiet):
            due = many[j].feed_many(block[:, j], cooldown, lambda i, d: d)
            got += [(start + i, int(j)) for i, _ in due]
        start += len(block)
    assert len(expected) > 20 and together > 100
    assert sorted(got) == expected
    assert [s.cooldown_left for s in many] == [s.cooldown_left for s in one]
    for mine, theirs in zip(many, one, strict=True):  # up to rounding: cumulative sums
        assert close_states(mine.checkpoint(), theirs.checkpoint())
