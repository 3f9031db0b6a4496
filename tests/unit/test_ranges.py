"""Reference ranges and the out-of-range rate (streams.ranges, the windows, the monitor)."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.events import InferenceEvent
from streams.monitor import ModelMonitor
from streams.profile import ReferenceProfile
from streams.ranges import FeatureRanges

NAMES = ("a", "b", "c")


@settings(max_examples=60, deadline=None)
@given(
    learn=st.integers(1, 30),
    cuts=st.lists(st.integers(1, 25), min_size=1, max_size=6),
    seed=st.integers(0, 10_000),
)
def test_a_matrix_counts_exactly_as_its_rows_one_by_one(learn, cuts, seed):
    rows = np.random.default_rng(seed).normal(0, 1, (sum(cuts), len(NAMES))).round(2)
    one, many = FeatureRanges(learn), FeatureRanges(learn)
    expected = [one.check(dict(zip(NAMES, row.tolist(), strict=True))) for row in rows]
    got, start = [], 0
    for size in cuts:  # the same rows in batches of any size
        checked, outside = many.check_matrix(NAMES, rows[start : start + size])
        got += list(zip(checked, outside, strict=True))
        start += size
    assert got == expected
    assert many.bounds == one.bounds
    restored = FeatureRanges(learn)
    restored.restore(json.loads(json.dumps(many.to_state())))
    assert restored.to_state() == many.to_state()


def _event(i: int, x: float, t: float) -> InferenceEvent:
    return InferenceEvent("m", "v1", f"r{i}", t, {"a": x, "b": 0.5, "c": -0.5, "d": 0.0}, 1)


def test_a_unit_change_upstream_shows_as_the_out_of_range_rate():
    rng = np.random.default_rng(1)
    reference = rng.normal(0, 1, (2000, 4))
    reference[:, 1:] = [0.5, -0.5, 0.0]  # constant features: their range is one point
    profile = ReferenceProfile.from_rows(["a", "b", "c", "d"], reference.tolist())
    monitor = ModelMonitor("m")
    monitor.warm_up(profile)
    t = 1_000_000.0
    normal = [_event(i, float(rng.normal()), t + i * 0.01) for i in range(3000)]
    monitor.observe_inferences(normal)
    quiet = monitor.metrics()["1m"]["out_of_range_rate"]
    assert quiet < 0.002  # within the profile's range, but for its tails
    # feature "a" now arrives in thousandths (a unit change): nearly all of it is outside
    start = t + 60.0
    scaled = [_event(i, 1000 * float(rng.normal()), start + i * 0.01) for i in range(3000)]
    monitor.observe_inferences(scaled)
    rate = monitor.metrics()["1m"]["out_of_range_rate"]
    assert 0.2 < rate <= 0.25  # one feature of four, ~99.9% of its values
    saved = json.loads(json.dumps(monitor.checkpoint()))
    again = ModelMonitor("m")
    again.restore(saved)
    assert again.metrics()["1m"]["out_of_range_rate"] == rate
    assert again.ranges.bounds == monitor.ranges.bounds


def test_without_a_profile_the_first_values_set_the_range():
    monitor = ModelMonitor("m")
    events = [_event(i, float(i % 10), 100.0 + i) for i in range(1200)]
    monitor.observe_inferences(events)
    assert monitor.ranges.bounds["a"] == (0.0, 9.0)
    # every feature learnt from its first 1,000 values; the last 200 events were checked
    window = monitor.windows["1d"].snapshot()
    assert window["out_of_range_rate"] == 0.0
    monitor.observe_inference(_event(2000, 50.0, 1400.0))
    assert monitor.windows["1d"].snapshot()["out_of_range_rate"] == 1 / (4 * 201)
