"""Per-feature mean/std/min/max over rolling windows (streams/feature_stats.py)."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from contracts.events import InferenceEvent
from streams.feature_stats import SLOTS, FeatureStats
from streams.monitor import ModelMonitor

NAMES = ("a", "b", "c")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 300),  # event time, out of order, often older than the window
            st.lists(st.one_of(st.none(), st.floats(-1e3, 1e3)), min_size=3, max_size=3),
        ),
        max_size=50,
    ),
    st.integers(0, 50),
    st.sampled_from([1000, 2]),  # the cap on features, reached or not
)
@example(  # (0.1 + 0.7) + 0.3 != 0.1 + (0.7 + 0.3): the running sum must go first
    rows=[(1.0, [v, None, None]) for v in (0.0, 0.1, 0.7, 0.3)], cut=2, cap=1000
)
def test_a_batch_gives_the_state_of_one_event_at_a_time(rows, cut, cap):
    """Batches and single events leave the same bytes (sums in the same order), absent values
    (NaN) included."""
    times = [t for t, _ in rows]
    table = np.array([[np.nan if v is None else v for v in values] for _, values in rows])
    table = table.reshape(len(rows), 3)
    one, many, public = (FeatureStats(60.0, cap) for _ in range(3))
    for i in range(len(rows)):  # the arithmetic itself, one row at a time ...
        one._add(times[i : i + 1], NAMES, table[i : i + 1])
    many._add(times[:cut], NAMES, table[:cut])  # ... and in two parts
    many._add(times[cut:], NAMES, table[cut:])
    assert many.to_state() == one.to_state()
    for i in range(len(rows)):  # what callers use: rows wait, then go in as one table
        public.add(times[i : i + 1], NAMES, table[i : i + 1])
    assert public.to_state() == one.to_state()


def test_the_summary_is_the_window_s_own_mean_std_min_and_max():
    rng = np.random.default_rng(4)
    times = np.arange(3000) * 0.1  # 300 s of event time
    values = np.c_[1e6 + rng.normal(size=3000), rng.exponential(2.0, size=3000)]
    stats = FeatureStats(60.0)
    for start in range(0, 3000, 250):
        stats.add(
            times[start : start + 250].tolist(), ("big", "skewed"), values[start : start + 250]
        )
    slot_s = 60.0 / SLOTS
    first = (np.floor(times[-1] / slot_s) - SLOTS + 1) * slot_s  # the live slots' start
    inside = times >= first
    got = stats.summary()
    for j, name in enumerate(("big", "skewed")):
        expected = values[inside, j]
        assert got[name]["n"] == len(expected)
        assert np.isclose(got[name]["mean"], expected.mean(), rtol=1e-12)
        assert np.isclose(got[name]["std"], expected.std(ddof=1), rtol=1e-6)  # 1e6 offset too
        assert got[name]["min"] == expected.min() and got[name]["max"] == expected.max()


def test_the_monitor_reports_feature_stats_per_window_and_resumes_them():
    monitor = ModelMonitor("m")
    events = [
        InferenceEvent("m", "v1", f"r{i}", 1000.0 + i, {"x": float(i % 7), "y": 2.0}, 1)
        for i in range(500)
    ]
    monitor.observe_inferences(events[:300])
    resumed = ModelMonitor("m")
    resumed.restore(json.loads(json.dumps(monitor.checkpoint())))
    for m in (monitor, resumed):
        m.observe_inferences(events[300:])
    hour = json.loads(monitor.metrics()["1h"]["feature_stats"])
    assert hour["x"]["n"] == 500 and hour["x"]["min"] == 0.0 and hour["x"]["max"] == 6.0
    assert hour["y"] == {"n": 500, "mean": 2.0, "std": 0.0, "min": 2.0, "max": 2.0}
    minute = json.loads(monitor.metrics()["1m"]["feature_stats"])
    assert 60 <= minute["x"]["n"] <= 65  # the last minute, rolling by 5 s slots
    assert resumed.metrics() == monitor.metrics()
