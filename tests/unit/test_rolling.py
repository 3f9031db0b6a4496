from __future__ import annotations

import numpy as np
import pytest

from streams.rolling import WindowedMetrics


def test_old_buckets_leave_the_window():
    m = WindowedMetrics(window_s=60, bucket_s=1)
    for t in range(0, 120):
        m.add_inference(1000.0 + t)
    snap = m.snapshot()
    assert snap["events"] == 60
    assert snap["event_rate_per_s"] == pytest.approx(1.0)


def test_records_older_than_the_window_are_counted_not_used():
    m = WindowedMetrics(window_s=60, bucket_s=1)
    m.add_inference(5000.0)
    m.add_inference(4000.0)
    assert m.snapshot()["events"] == 1
    assert m.too_late == 1


def test_latency_quantiles_are_close_to_exact():
    rng = np.random.default_rng(0)
    latencies = rng.lognormal(3, 0.8, 20_000)
    m = WindowedMetrics(window_s=3600, bucket_s=60)
    for i, ms in enumerate(latencies):
        m.add_inference(1000.0 + i * 0.1, float(ms))
    snap = m.snapshot()
    for q, key in ((0.5, "latency_p50_ms"), (0.95, "latency_p95_ms"), (0.99, "latency_p99_ms")):
        assert snap[key] == pytest.approx(np.quantile(latencies, q), rel=0.03)


def test_classification_metrics():
    m = WindowedMetrics(window_s=60, bucket_s=1)
    # tp=3, fp=1, fn=2, tn=4
    cases = [(True, True)] * 3 + [(True, False)] + [(False, True)] * 2 + [(False, False)] * 4
    for predicted, actual in cases:
        m.add_outcome(10.0, predicted, actual, predicted == actual)
    snap = m.snapshot()
    assert snap["accuracy"] == pytest.approx(0.7)
    assert snap["precision"] == pytest.approx(0.75)
    assert snap["recall"] == pytest.approx(0.6)
    assert snap["f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)


def test_empty_window_has_no_ratios():
    snap = WindowedMetrics(60, 1).snapshot()
    assert snap["events"] == 0 and snap["accuracy"] is None and snap["latency_p99_ms"] is None
