"""Events per second through one ModelMonitor (no Kafka, no Redis), every signal on.

    python bench/monitor_throughput.py [--events 20000] [--features 4]

Reported beside a baseline measured in the same run: decoding the same events from JSON
(``decode_inference``), the floor any worker pays per message.  The production-pipeline work
(batching to 50k events/s per worker) will be measured against these figures.
"""

from __future__ import annotations

import argparse
import random
import time

from contracts.events import InferenceEvent, decode_inference
from streams.monitor import ModelMonitor, MonitorConfig


def events(n: int, n_features: int) -> list[bytes]:
    rng = random.Random(0)
    return [
        InferenceEvent(
            "bench",
            "v1",
            f"r{i}",
            1_000_000.0 + i * 0.01,
            {f"x{j}": rng.gauss(0, 1) for j in range(n_features)},
            rng.choice([0, 1]),
            score=rng.random(),
            latency_ms=rng.lognormvariate(2, 0.3),
        ).to_json()
        for i in range(n)
    ]


def rate(run, n: int) -> float:
    t0 = time.perf_counter()
    run()
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=4)
    args = parser.parse_args()
    raw = events(args.events, args.features)
    decoded = [decode_inference(r) for r in raw]
    baseline = rate(lambda: [decode_inference(r) for r in raw], len(raw))
    only_cusum = MonitorConfig(
        vector_detectors=(),
        class_detectors=(),
        rate_detectors=(),
        performance_detectors=(),
        security_detectors=(),
        slo_detectors=(),
        throughput_detectors=(),
        output_rules=(),
    )
    rows = [("decode only (baseline)", baseline)]
    for name, config in (
        ("monitor, every signal", MonitorConfig()),
        ("monitor, CUSUMs only", only_cusum),
    ):
        monitor = ModelMonitor("bench", config)
        rows.append(
            (name, rate(lambda m=monitor: [m.observe_inference(e) for e in decoded], len(decoded)))
        )
    print(f"{args.events} events, {args.features} features each")
    print(f"{'':28s} {'events/s':>10s} {'x decode':>9s}")
    for name, r in rows:
        print(f"{name:28s} {r:10,.0f} {r / baseline:9.2f}")


if __name__ == "__main__":
    main()
