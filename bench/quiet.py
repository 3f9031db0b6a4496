"""False alarms per model on traffic where nothing changes, and what quiet costs in delay.

    python bench/quiet.py [--events 500000] [--out docs/quiet-benchmark.md]

One ModelMonitor with 20 features (all defaults, batches of 1,000 events as the worker feeds
them), on three kinds of stationary traffic at 100 events/s of event time:

- **i.i.d.**: 20 independent standard normal features;
- **autocorrelated**: 20 AR(1) features with rho = 0.9;
- **realistic mixed**: 4 log-normal (skewed), 4 Student-t with 3 degrees of freedom (heavy
  tails), 4 binary flags (10 %), 2 Poisson counts, 3 with a daily cycle of +/-3 sd, 3 normal.

Each is run with the defaults (family-wise budget of one false alarm per 1M events per model,
rolling input references) and with the previous behaviour (each detector calibrated on its own
for one false alarm per 500k values, fixed references), in the same run.  Reported: alarms
(opened, as published) and incidents per 1M events.  The delay table: events from a 1 sd
shift of one feature (and, separately, a rise of the error rate from 10 % to 20 %) to its alarm.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import numpy as np

from contracts.events import InferenceEvent, LabelEvent
from streams.monitor import ModelMonitor, MonitorConfig

RATE = 100.0  # events per second of event time
BEFORE = MonitorConfig(false_alarm_events=None, input_refresh_every=None)
NOW = MonitorConfig()


def features(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "iid":
        return rng.normal(size=(n, 20))
    if kind == "autocorrelated":
        x, e, rho = np.empty((n, 20)), rng.normal(size=(n, 20)), 0.9
        x[0] = e[0]
        for i in range(1, n):
            x[i] = rho * x[i - 1] + math.sqrt(1 - rho * rho) * e[i]
        return x
    t = np.arange(n) / RATE
    day = np.sin(2 * np.pi * t / 86_400.0)
    columns = [rng.lognormal(0, 1, n) for _ in range(4)]
    columns += [rng.standard_t(3, n) for _ in range(4)]
    columns += [(rng.random(n) < 0.1).astype(float) for _ in range(4)]
    columns += [rng.poisson(3, n).astype(float) for _ in range(2)]
    columns += [10 + 3 * day + rng.normal(size=n) for _ in range(3)]
    columns += [rng.normal(size=n) for _ in range(3)]
    return np.column_stack(columns)


def events(x: np.ndarray, seed: int, start: int = 0) -> list[InferenceEvent]:
    """Events of the rows ``x`` (the stream's from row ``start`` on), with their own random
    outputs and latencies: a batch's draws depend on its start, so batches do not repeat one
    another (they did until 2026-11-26, which flattered the output and latency signals)."""
    rng = np.random.default_rng([seed + 1, start])
    names = [f"f{j}" for j in range(x.shape[1])]
    score = rng.uniform(0.55, 1.0, len(x))
    predicted = rng.integers(0, 2, len(x))
    latency = rng.lognormal(2.3, 0.3, len(x))
    return [
        InferenceEvent(
            "m",
            "v1",
            f"r{start + i}",
            1.7e9 + (start + i) / RATE,
            dict(zip(names, row, strict=True)),
            int(predicted[i]),
            score=float(score[i]),
            latency_ms=float(latency[i]),
        )
        for i, row in enumerate(x.tolist())
    ]


def quiet_run(kind: str, n: int, config: MonitorConfig, seed: int) -> tuple[int, int]:
    """(alarms opened, incidents) on ``n`` stationary events."""
    monitor = ModelMonitor("m", config)
    x = features(kind, n, seed)
    opened, incidents = 0, set()
    for start in range(0, n, 1000):
        for _, alarm in monitor.observe_inferences(
            events(x[start : start + 1000], seed, start)
        ).alarms:
            opened += 1
            incidents.add(alarm.incident)
        monitor.resolve_quiet()
    return opened, len(incidents)


def feature_delay(
    config: MonitorConfig, seed: int, warm: int = 12_000, after: int = 3000
) -> int | None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(warm + after, 20))
    x[warm:, 3] += 1.0
    monitor = ModelMonitor("m", config)
    stream = events(x, seed)
    for start in range(0, len(stream), 200):
        for position, alarm in monitor.observe_inferences(stream[start : start + 200]).alarms:
            if alarm.signal_name == "f3" and start + position >= warm:
                return start + position - warm
    return None


def error_delay(
    config: MonitorConfig, seed: int, warm: int = 6000, after: int = 6000
) -> int | None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(warm + after, 20))
    stream = events(x, seed)
    monitor = ModelMonitor("m", config)
    for i, event in enumerate(stream):
        monitor.observe_inference(event)
        wrong = rng.random() < (0.1 if i < warm else 0.2)
        label = (1 - event.prediction) if wrong else event.prediction
        out = monitor.observe_label(LabelEvent("m", event.request_id, label, event.event_time))
        if i >= warm and any(a.signal_kind == "error" for a in out.alarms):
            return i - warm
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--delay-runs", type=int, default=10)
    parser.add_argument(
        "--seeds", type=int, default=1, help="seeds of traffic for the defaults (before: one)"
    )
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    t0 = time.time()
    rows = []
    seeds = range(11, 11 + args.seeds)
    for kind in ("iid", "autocorrelated", "mixed"):
        before = quiet_run(kind, args.events, BEFORE, seed=11)
        now = [quiet_run(kind, args.events, NOW, seed=seed) for seed in seeds]
        rows.append((kind, before, now))
        print(kind, "before", before, "now", now, f"{time.time() - t0:.0f}s", flush=True)
    scale = 1_000_000 / args.events
    delays = {}
    for name, config in (("before", BEFORE), ("now", NOW)):
        f = [feature_delay(config, seed) for seed in range(args.delay_runs)]
        e = [error_delay(config, seed) for seed in range(args.delay_runs)]
        delays[name] = (f, e)
        print(name, "delays", f, e, flush=True)

    def median(values: list[int | None]) -> str:
        found = [v for v in values if v is not None]
        missed = len(values) - len(found)
        text = f"{statistics.median(found):.0f}" if found else "-"
        return text + (f" ({missed} missed)" if missed else "")

    lines = [
        "# Quiet-traffic benchmark (false alarms per model)",
        "",
        f"`python bench/quiet.py --events {args.events} --seeds {args.seeds}`: one "
        "ModelMonitor, 20 features, all "
        "signals on, batches of 1,000 events, 100 events/s of event time; nothing changes.  "
        "*before*: each detector calibrated on its own (one false alarm per 500k values per "
        "signal), fixed references; *now*: the defaults (family-wise budget of one false alarm "
        "per 1M events per model, rolling input references).  Same traffic, same run; *now* "
        f"on {args.seeds} seed(s) of traffic (mean, and each seed's incidents), *before* on the "
        "first.",
        "",
        "| traffic | alarms per 1M events, before | now | incidents per 1M events, now | "
        "incidents per seed, now | target |",
        "|---|---|---|---|---|---|",
    ]
    for kind, before, now in rows:
        alarms = statistics.mean(n[0] for n in now) * scale
        incidents = statistics.mean(n[1] for n in now) * scale
        each = ", ".join(str(n[1]) for n in now)
        lines.append(
            f"| {kind} | {before[0] * scale:.1f} | {alarms:.1f} | {incidents:.1f} | {each} | <= 1 |"
        )
    lines += [
        "",
        f"Detection delay, median over {args.delay_runs} runs (events after the change):",
        "",
        "| change | before | now |",
        "|---|---|---|",
        f"| one feature of 20 shifts by 1 sd | {median(delays['before'][0])} | {median(delays['now'][0])} |",
        f"| error rate 10 % -> 20 % (every prediction labelled) | {median(delays['before'][1])} | {median(delays['now'][1])} |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
