"""Per-feature mean/std/min/max over rolling windows (streams/feature_stats.py)."""

from __future__ import annotations

import json
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from contracts.events import InferenceEvent
from streams.feature_stats import QUANTILES, SLOTS, FeatureStats, linear_quantiles
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
@example(  # twenty rows in one slot: summed pairwise, they round otherwise than in turn
    rows=[(1.0, row) for row in np.random.default_rng(20).normal(size=(20, 3)).tolist()],
    cut=0,
    cap=1000,
)
def test_a_batch_gives_the_state_of_one_event_at_a_time(rows, cut, cap):
    """Batches and single events leave the same bytes (sums in the same order), absent values
    (NaN) included."""
    times = [t for t, _ in rows]
    table = np.array([[np.nan if v is None else v for v in values] for _, values in rows])
    table = table.reshape(len(rows), 3)
    one, many, public, by_columns = (FeatureStats(60.0, cap) for _ in range(4))
    for i in range(len(rows)):  # the arithmetic itself, one row at a time ...
        one._add(times[i : i + 1], NAMES, table[i : i + 1])
    many._add(times[:cut], NAMES, table[:cut])  # ... and in two parts
    many._add(times[cut:], NAMES, table[cut:])
    assert many.to_state() == one.to_state()
    # a table stored column by column (a columnar envelope's matrix) adds the same bytes
    by_columns._add(times[:cut], NAMES, np.asfortranarray(table[:cut]))
    by_columns._add(times[cut:], NAMES, np.asfortranarray(table[cut:]))
    assert by_columns.to_state() == one.to_state()
    for i in range(len(rows)):  # what callers use: rows wait, then go in as one table
        public.add(times[i : i + 1], NAMES, table[i : i + 1])
    assert public.to_state() == one.to_state()


@pytest.mark.parametrize("cap", [1000, 1])
def test_a_batch_of_one_feature_sums_in_turn_as_one_event_at_a_time(cap):
    """Regression test: a model with one feature (or one kept under the cap) sums a table of
    one column, which numpy adds pairwise, so a batch rounded otherwise than one by one and a
    restart's batches could leave other bytes than an undisturbed run's."""
    rng = np.random.default_rng(1)
    table = rng.normal(size=(300, 3)) * 10.0 ** rng.integers(-4, 4, size=(300, 3))
    names = ("a",) if cap == 1000 else NAMES
    table = table[:, : len(names)]
    one, many = FeatureStats(60.0, cap), FeatureStats(60.0, cap)
    times = [1.0] * len(table)
    for i in range(len(table)):
        one._add(times[i : i + 1], names, table[i : i + 1])
    many._add(times, names, table)
    assert many.to_state() == one.to_state()


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 300),
            st.lists(st.one_of(st.none(), st.floats(-1e3, 1e3)), min_size=2, max_size=2),
        ),
        max_size=40,
    ),
    st.integers(0, 40),
)
def test_quantile_edges_and_bins_do_not_depend_on_batching(rows, cut):
    """With a sample of 5 values the edges are set inside these streams: where a batch cuts,
    and events older than the window, must not change the sample, the edges or the counts."""
    times = [t for t, _ in rows]
    table = np.array([[np.nan if v is None else v for v in values] for _, values in rows])
    table = table.reshape(len(rows), 2)
    with patch("streams.feature_stats.EDGE_SAMPLE", 5):
        one, many = FeatureStats(60.0), FeatureStats(60.0)
        for i in range(len(rows)):
            one._add(times[i : i + 1], ("a", "b"), table[i : i + 1])
        many._add(times[:cut], ("a", "b"), table[:cut])
        many._add(times[cut:], ("a", "b"), table[cut:])
        assert many.to_state() == one.to_state()
        summary = one.summary()
    for name, row in summary.items():  # every value in the window is counted once
        j = one._column[name]
        if np.isfinite(one.edges[j, 0]):
            assert one.hist[:, j].sum() == row["n"]


@pytest.mark.parametrize("draw", ["normal", "exponential", "discrete"])
def test_quantiles_are_within_one_bin_of_the_window_s_own(draw):
    """The estimate's rank among the window's values is within the share of values in its bin
    (about 1/16 on a stationary feature); under a sample's worth of values they are exact."""
    rng = np.random.default_rng(7)
    make = {
        "normal": lambda n: 50 + 10 * rng.normal(size=n),
        "exponential": lambda n: rng.exponential(3.0, size=n),
        "discrete": lambda n: rng.integers(0, 4, size=n).astype(float),
    }[draw]
    values = make(5000)
    times = np.arange(5000) * 0.01  # 50 s: all inside the 60 s window
    stats = FeatureStats(60.0)
    few = FeatureStats(60.0)
    few.add(times[:100].tolist(), ("x",), values[:100, None])
    exact = np.quantile(values[:100], [0.05, 0.25, 0.5, 0.75, 0.95])
    assert [few.summary()["x"][q] for q in ("p05", "p25", "p50", "p75", "p95")] == list(exact)
    for start in range(0, 5000, 500):
        stats.add(times[start : start + 500].tolist(), ("x",), values[start : start + 500, None])
    got = stats.summary()["x"]
    assert got["n"] == 5000
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        estimate = got[f"p{round(q * 100):02d}"]
        below, at_most = np.mean(values < estimate), np.mean(values <= estimate)
        # the estimate's rank range [below, at_most] comes within 1/16 + 2% of q
        assert below - 0.0825 <= q <= at_most + 0.0825, (q, estimate, below, at_most)
        assert got["min"] <= estimate <= got["max"]


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


def test_histogram_counts_past_two_bytes_widen_and_stay_exact():
    """Counts are kept in 2 bytes until a slot's could pass 65,535 (a busy model's day slot):
    then 4, through checkpoints too; the quantiles count every value."""
    stats = FeatureStats(86_400.0)  # 2 h slots
    rng = np.random.default_rng(5)
    sample = rng.normal(size=(300, 1))
    stats.add([0.0] * 300, ("x",), sample)  # the edges are set from these
    assert stats.hist.dtype == np.uint16
    for _ in range(4):  # 4 x 20,000 constant values: one bin past 65,535 in one slot
        stats.add([1.0] * 20_000, ("x",), np.full((20_000, 1), 5.0))
    assert (
        stats.hist.dtype == np.uint32
        and int(stats.hist.max()) == 80_000 + (sample >= stats.edges[0, -1]).sum()
    )
    assert int(stats.hist.sum()) == stats.summary()["x"]["n"] == 80_300
    assert stats.summary()["x"]["p25"] >= stats.edges[0, -1]  # in the top bin with the 5.0s
    resumed = FeatureStats(86_400.0)
    resumed.restore(json.loads(json.dumps(stats.to_state())))
    assert resumed.hist.dtype == np.uint32 and resumed.summary() == stats.summary()
    quiet = FeatureStats(86_400.0)
    quiet.add([0.0] * 300, ("x",), sample)
    quiet.restore(json.loads(json.dumps(quiet.to_state())))
    assert quiet.hist.dtype == np.uint16


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
    constant = {"n": 500, "mean": 2.0, "std": 0.0, "min": 2.0, "max": 2.0}
    assert hour["y"] == {**constant, **{q: 2.0 for q in ("p05", "p25", "p50", "p75", "p95")}}
    # x cycles 0..6 evenly: its median is 3 (to within one of its 16 bins)
    assert 2.5 <= hour["x"]["p50"] <= 3.5 and hour["x"]["p05"] <= 1.0 and hour["x"]["p95"] >= 5.0
    minute = json.loads(monitor.metrics()["1m"]["feature_stats"])
    assert 60 <= minute["x"]["n"] <= 65  # the last minute, rolling by 5 s slots
    assert resumed.metrics() == monitor.metrics()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(-1e6, 1e6, allow_subnormal=False),
            st.sampled_from([0.0, 1.0, -2.5, 1e-300, 7.0]),  # ties, as flags and counts give
        ),
        min_size=1,
        max_size=300,
    )
)
@example([5.0, 1.0, 3.0])
@example([1e6, -1e6])
def test_quantiles_of_a_sample_are_numpy_s_to_the_bit(values):
    """A feature's quantiles before its bin edges are set (:func:`linear_quantiles`, plain
    Python for speed) are exactly numpy's."""
    assert linear_quantiles(values) == np.quantile(np.array(values), QUANTILES).tolist()
