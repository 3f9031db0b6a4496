"""The bridge's Prometheus metrics (served on ``/metrics`` by ``driftline bridge``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

NOTICES = Counter(
    "driftline_bridge_notices_total",
    "Alarms-topic records the bridge read, by what became of them before delivery",
    ["outcome"],  # accepted, filtered (below the minimum severity), invalid
)
DELIVERIES = Counter(
    "driftline_bridge_deliveries_total",
    "Notices per sink by outcome: delivered, parked (retry topic), rejected (dead-lettered)",
    ["sink", "outcome"],
)
RETRIES = Counter("driftline_bridge_retries_total", "HTTP attempts tried again", ["sink"])
DELIVERY_SECONDS = Histogram(
    "driftline_bridge_delivery_seconds",
    "From the first attempt to delivery, per request",
    ["sink"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
CONSUMER_LAG = Gauge(
    "driftline_bridge_consumer_lag",
    "Alarms-topic records not yet handled by this bridge, per partition",
    ["topic", "partition"],
)
