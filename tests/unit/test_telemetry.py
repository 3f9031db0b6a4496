"""The worker's Prometheus collector, over a runtime fed in memory."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from contracts.events import InferenceEvent
from streams.runtime import Source
from streams.telemetry import install
from tests.unit.test_runtime import _runtime


async def _fed(models: int, features: int = 4):
    runtime, _publisher, sink = _runtime()
    for m in range(models):
        raws = [
            (
                InferenceEvent(
                    f"m{m}",
                    "v1",
                    f"r{i}",
                    10.0 + i,
                    {f"f{j}": float((i * j) % 7) for j in range(features)},
                    1,
                    score=0.9,
                ).to_json(),
                Source("t.inferences", m % 2, m * 1000 + i),
            )
            for i in range(50)
        ]
        await runtime.handle_inferences(raws)
    await runtime.handle_inference(b"{oops", Source("t.inferences", 0, 99_999))
    await runtime.flush()
    return runtime, sink


def _families(registry):
    return {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}


async def test_counts_readings_lag_and_batch_time_are_exported():
    runtime, sink = await _fed(3)
    registry = CollectorRegistry()
    install(runtime, highwater=lambda topic, partition: 100_500, registry=registry)
    await runtime.handle_inferences([(b"[]", Source("t.inferences", 1, 100_000))])
    f = _families(registry)
    processed = {
        s.labels["kind"]: s.value
        for s in f["driftline_worker_events"].samples
        if s.labels["outcome"] == "processed"
    }
    assert processed == {"inferences": 150, "labels": 0}
    dead = {s.labels["reason"]: s.value for s in f["driftline_worker_deadlettered"].samples}
    assert dead == {"invalid_json": 1, "not_an_object": 1}
    assert f["driftline_worker_models"].samples[0].value == 3
    models = {s.labels["model"] for s in f["driftline_detector_ratio"].samples}
    assert models == {"m0", "m1", "m2"}
    for stat, thr in zip(
        f["driftline_detector_statistic"].samples,
        f["driftline_detector_threshold"].samples,
        strict=True,
    ):
        assert stat.labels == thr.labels and thr.value > 0
    lag = {s.labels["partition"]: s.value for s in f["driftline_worker_consumer_lag"].samples}
    assert lag == {"0": 100_500 - 99_999 - 1, "1": 100_500 - 100_000 - 1}
    assert sink.series and sink.series[0][1]["r"]  # dashboard points carry the readings too


async def test_detector_series_are_bounded_nearest_threshold_first():
    runtime, _ = await _fed(5)
    registry = CollectorRegistry()
    collector = install(runtime, registry=registry)
    everything = sum(len(r) for r in runtime.readings.values())
    collector.max_series = 7
    f = _families(registry)
    kept = f["driftline_detector_ratio"].samples
    assert len(kept) == 7
    assert f["driftline_metrics_series_dropped"].samples[0].value == everything - 7
    ratios = sorted((s / t for r in runtime.readings.values() for _, _, s, t in r), reverse=True)
    assert sorted((s.value for s in kept), reverse=True) == ratios[:7]
