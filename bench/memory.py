"""Worker memory per model after warm-up: many ModelMonitors, 20 features each, as in a worker.

    python bench/memory.py [--models 1000] [--traffic day|burst] [--events 2500] [--out FILE]

``--traffic day`` (the default) gives each model a day of event time, so every bucket of every
rolling window (1 minute, 1 hour, 1 day) is live, with spread scores and latencies that fill
their histograms: one event every 10 s for 23 hours, one a second for the last hour, 50 a
second for the last minute (14,820 events).  ``--traffic burst`` is the regime this bench had
before: ``--events`` events 10 ms apart (25 s of event time for 2,500), every score 0.8 and
every latency 10 ms; it leaves most buckets empty and the histograms one bin wide, so it
understates what a model holds after a day (4.0 MB per model at 6b7567d, where it read 450 KB).

Each model's events go through the batch path in blocks of 500, configured as the worker runs
them, each block followed by what a flush does with a changed model (metrics, checkpoint, the
join's journal drained).  Two label regimes, each in a fresh process: labels arrive 100 events
after their predictions (the join holds about 100 waiting predictions per model), and no
labels at all (every prediction waits: in the worker only the ``DRIFTLINE_JOIN_MEMORY`` (250)
most recent stay in memory once the journal is drained to Redis; a label whose prediction has
left memory gets it back from a stand-in for Redis, as in the worker).
Reported: the process's RSS growth over the same process with the monitors' code imported,
in total and per model; and a checkpoint's size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import gc, json, os, sys
import numpy as np
from contracts.events import InferenceEvent, LabelEvent
from contracts.settings import Settings
from streams.monitor import ModelMonitor, MonitorConfig

def rss():
    for line in open(f"/proc/{os.getpid()}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

n_models, n_events, labels = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "labels"
day = sys.argv[4] == "day"
names = [f"f{j}" for j in range(20)]
rng = np.random.default_rng(0)
if day:  # 23 h at one event per 10 s, the last hour at 1/s, the last minute at 50/s
    end = 1.7e9 + 86_400
    times = np.concatenate([
        np.arange(end - 86_400, end - 3_600, 10.0),
        np.arange(end - 3_600, end - 60, 1.0),
        np.arange(end - 60, end, 0.02),
    ]).tolist()
else:
    times = [1.7e9 + i / 100 for i in range(n_events)]
n = len(times)
gc.collect()
base = rss()
monitors = []
config = MonitorConfig.from_settings(Settings())  # as the worker runs them
for m in range(n_models):
    monitor = ModelMonitor(f"model-{m}", config)
    x = rng.normal(size=(n, 20))
    if day:  # the confidence in the predicted class, and latencies around 20 ms
        scores = rng.uniform(0.5, 1.0, n).tolist()
        latencies = rng.lognormal(np.log(20.0), 0.5, n).tolist()
    else:
        scores, latencies = [0.8] * n, [10.0] * n

    def decoded(start, stop):  # a block's events, made when it comes (the worker decodes a batch)
        return [
            InferenceEvent(f"model-{m}", "v1", f"r{i}", times[i], dict(zip(names, row)), i % 2,
                           score=scores[i], latency_ms=latencies[i])
            for i, row in zip(range(start, stop), x[start:stop].tolist())
        ]

    in_redis = {}  # what the worker's flushes wrote to Redis (this model's, gone after it)

    def flush():  # what the worker's flush does with a changed model, less the writes
        monitor.metrics()  # (waiting feature-stats rows go in when read)
        monitor.checkpoint()
        written, consumed = monitor.join.drain()
        in_redis.update((p.request_id, p) for p in written)
        for request_id, _ in consumed:
            in_redis.pop(request_id, None)

    for start in range(0, n, 500):
        monitor.observe_inferences(decoded(start, min(start + 500, n)))
        flush()
        if labels:
            done = range(max(0, start - 100), min(start + 400, n - 100))  # 100 wait
            batch = [LabelEvent(f"model-{m}", f"r{i}", i % 2, times[i] + 1) for i in done]
            # as the worker does: a label whose prediction left memory finds it in Redis
            missing = monitor.join.missing(batch)
            monitor.join.adopt([in_redis[lab.request_id] for lab in missing if lab.request_id in in_redis])
            monitor.observe_labels(batch)
            flush()
    monitors.append(monitor)
    del x, in_redis
gc.collect()
grown = rss() - base
print(json.dumps({
    "rss_mb": grown,
    "pending": sum(m.join.pending[0] for m in monitors) / n_models,
    "checkpoint_bytes": len(json.dumps(monitors[0].checkpoint())),
    "events_per_model": n,
}))
"""


def start(models: int, events: int, labels: bool, traffic: str) -> subprocess.Popen:
    """One regime in a process of its own (RSS is per process, so two can run side by side)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    regime = "labels" if labels else "none"
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(models), str(events), regime, traffic],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def result(process: subprocess.Popen) -> dict:
    out, err = process.communicate()
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, process.args, out, err)
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--traffic", choices=("day", "burst"), default="day")
    parser.add_argument("--events", type=int, default=2500, help="per model, burst only")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    # both regimes at once, each in its own process: half the wait (20-25 minutes each for
    # 1,000 models on one core here), and neither's memory is in the other's RSS
    running = [
        (labels, start(args.models, args.events, labels, args.traffic)) for labels in (True, False)
    ]
    rows = []
    try:
        for labels, process in running:
            rows.append((labels, result(process)))
            print(labels, rows[-1][1], flush=True)
    finally:  # one failed: the other is not left running
        for _, process in running:
            if process.poll() is None:
                process.kill()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    events = rows[0][1]["events_per_model"]
    lines = [
        f"`python bench/memory.py --models {args.models} --traffic {args.traffic}"
        + (f" --events {args.events}`" if args.traffic == "burst" else "`")
        + f" at {commit or 'an unknown commit'}: {events} events per model.",
        "",
        "| labels | waiting predictions per model | RSS growth | per model | checkpoint |",
        "|---|---|---|---|---|",
    ]
    for labels, r in rows:
        kind = "100 events after their predictions" if labels else "none (all wait)"
        lines.append(
            f"| {kind} | {r['pending']:.0f} | {r['rss_mb']:.0f} MB | "
            f"{r['rss_mb'] / args.models * 1024:.0f} KB | {r['checkpoint_bytes'] / 1024:.0f} KiB |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:  # the table alone: the notes around it are written by hand
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
