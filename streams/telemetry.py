"""The monitoring worker's Prometheus metrics, read from the runtime when scraped.

========================================  ======  ===============================================
metric                                    type    labels
========================================  ======  ===============================================
``driftline_worker_events_total``         counter ``kind`` (inferences, labels), ``outcome``
                                                  (processed, redelivered)
``driftline_worker_deadlettered_total``   counter ``reason``
``driftline_worker_alarms_total``         counter ``state`` (opened, resolved)
``driftline_worker_open_alarms``          gauge   ``model`` (bounded, see below)
``driftline_worker_models``               gauge   (monitors in memory)
``driftline_worker_batch_seconds``        hist.   ``kind``
``driftline_worker_consumer_lag``         gauge   ``topic``, ``partition``
``driftline_detector_statistic``          gauge   ``model``, ``signal``, ``detector``
``driftline_detector_threshold``          gauge   ``model``, ``signal``, ``detector``
``driftline_detector_ratio``              gauge   statistic / threshold (>= 1: alarming)
``driftline_metrics_series_dropped``      gauge   detector series left out by the bound
========================================  ======  ===============================================

Label cardinality is bounded: at most ``DRIFTLINE_METRICS_MAX_SERIES`` (default 500) detector
series, the ones closest to their thresholds first, and open-alarm gauges only for models with
an open alarm.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.runtime import MonitorRuntime

BATCH_SECONDS = Histogram(
    "driftline_worker_batch_seconds",
    "Time to process one batch of messages taken from the stream",
    ["kind"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


class RuntimeCollector(Collector):
    def __init__(
        self,
        runtime: MonitorRuntime,
        highwater: Callable[[str, int], int | None] | None = None,
        max_series: int | None = None,
    ) -> None:
        self.runtime = runtime
        self.highwater = highwater
        self.max_series = max_series or int(os.environ.get("DRIFTLINE_METRICS_MAX_SERIES", 500))

    def collect(self) -> Iterator:
        counts = dict(self.runtime.counts)
        events = CounterMetricFamily(
            "driftline_worker_events", "Events the worker took", labels=["kind", "outcome"]
        )
        for kind in ("inferences", "labels"):
            for outcome in ("processed", "redelivered"):
                events.add_metric([kind, outcome], counts.get(f"{kind}.{outcome}", 0))
        yield events
        dead = CounterMetricFamily(
            "driftline_worker_deadlettered",
            "Messages sent to the dead-letter topic",
            labels=["reason"],
        )
        for name, n in counts.items():
            if name.startswith("deadletter.") and name not in (
                "deadletter.total",
                "deadletter.unsent",
            ):
                dead.add_metric([name.removeprefix("deadletter.")], n)
        yield dead
        alarms = CounterMetricFamily(
            "driftline_worker_alarms", "Alarm lifecycle events published", labels=["state"]
        )
        alarms.add_metric(["opened"], counts.get("alarms.published", 0))
        alarms.add_metric(["resolved"], counts.get("alarms.resolved", 0))
        yield alarms

        monitors = dict(self.runtime.monitors)
        yield GaugeMetricFamily(
            "driftline_worker_models", "Model monitors in memory", value=len(monitors)
        )
        open_now = GaugeMetricFamily(
            "driftline_worker_open_alarms",
            "Open alarms per model (models with one)",
            labels=["model"],
        )
        for model_id, monitor in list(monitors.items())[: self.max_series]:
            n = len(monitor.book.snapshot())
            if n:
                open_now.add_metric([model_id], n)
        yield open_now

        lag = GaugeMetricFamily(
            "driftline_worker_consumer_lag",
            "Messages behind the partition's end",
            labels=["topic", "partition"],
        )
        if self.highwater is not None:
            for (topic, partition), offset in sorted(dict(self.runtime.reached).items()):
                end = self.highwater(topic, partition)
                if end is not None:
                    lag.add_metric([topic, str(partition)], max(0, end - offset - 1))
        yield lag

        yield from self._readings()

    def _readings(self) -> Iterator:
        rows = [
            (model_id, signal, detector, stat, thr)
            for model_id, readings in list(self.runtime.readings.items())
            for signal, detector, stat, thr in readings
        ]
        rows.sort(key=lambda r: -(r[3] / r[4]) if r[4] else 0.0)  # nearest to alarm first
        kept, dropped = rows[: self.max_series], max(0, len(rows) - self.max_series)
        labels = ["model", "signal", "detector"]
        stat = GaugeMetricFamily(
            "driftline_detector_statistic", "Detector statistic", labels=labels
        )
        thr = GaugeMetricFamily(
            "driftline_detector_threshold", "Detector alarm threshold", labels=labels
        )
        ratio = GaugeMetricFamily(
            "driftline_detector_ratio",
            "Statistic / threshold (1 or more: alarming)",
            labels=labels,
        )
        for model_id, signal, detector, s, t in kept:
            stat.add_metric([model_id, signal, detector], s)
            thr.add_metric([model_id, signal, detector], t)
            ratio.add_metric([model_id, signal, detector], s / t if t else 0.0)
        yield stat
        yield thr
        yield ratio
        yield GaugeMetricFamily(
            "driftline_metrics_series_dropped",
            "Detector series not exported (DRIFTLINE_METRICS_MAX_SERIES)",
            value=dropped,
        )


def install(runtime: MonitorRuntime, highwater=None, registry=REGISTRY) -> RuntimeCollector:
    """Export ``runtime``'s metrics (once per process) and time its batches."""
    collector = RuntimeCollector(runtime, highwater)
    registry.register(collector)
    runtime.batch_seconds = lambda kind, seconds, n: BATCH_SECONDS.labels(kind).observe(seconds)
    return collector


def faust_highwater(app) -> Callable[[str, int], int | None]:
    """Highwater marks as the Faust app's consumer last saw them."""
    from faust.types import TP

    def highwater(topic: str, partition: int) -> int | None:
        try:
            value = app.consumer.highwater(TP(topic, partition))
        except Exception:  # not assigned (any more), consumer not started
            return None
        return None if value is None else int(value)

    return highwater
