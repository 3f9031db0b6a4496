"""Worker memory per model after warm-up: many ModelMonitors, 20 features each, as in a worker.

    python bench/memory.py [--models 1000] [--events 2500] [--out docs/memory-benchmark.md]

Each model gets ``--events`` inferences (past the 2,000-value reference, so every detector is
calibrated) through the batch path, in batches of 500, configured as the worker runs them.  Two
label regimes, each in a fresh process: labels arrive 100 events after their predictions (the
join holds about 100 waiting predictions per model), and no labels at all (every prediction
waits: in the worker only the ``DRIFTLINE_JOIN_MEMORY`` (250) most recent stay in memory once
the journal is drained to Redis; here the journal is drained after each batch as a flush would,
and a label whose prediction has left memory gets it back from a stand-in for Redis, as in the
worker).
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
names = [f"f{j}" for j in range(20)]
rng = np.random.default_rng(0)
gc.collect()
base = rss()
monitors = []
config = MonitorConfig.from_settings(Settings())  # as the worker runs them
for m in range(n_models):
    monitor = ModelMonitor(f"model-{m}", config)
    x = rng.normal(size=(n_events, 20)).tolist()
    events = [
        InferenceEvent(f"model-{m}", "v1", f"r{i}", 1.7e9 + i / 100, dict(zip(names, row)), i % 2,
                       score=0.8, latency_ms=10.0)
        for i, row in enumerate(x)
    ]
    in_redis = {}  # what the worker's flushes wrote to Redis (this model's, gone after it)

    def flush():  # what the worker's flush does with a changed model, less the writes
        monitor.metrics()  # (waiting feature-stats rows go in when read)
        monitor.checkpoint()
        written, consumed = monitor.join.drain()
        in_redis.update((p.request_id, p) for p in written)
        for request_id, _ in consumed:
            in_redis.pop(request_id, None)

    for start in range(0, n_events, 500):
        monitor.observe_inferences(events[start : start + 500])
        flush()
        if labels:
            done = events[max(0, start - 100) : max(0, start + 400)]
            batch = [LabelEvent(e.model_id, e.request_id, e.prediction, e.event_time + 1) for e in done]
            # as the worker does: a label whose prediction left memory finds it in Redis
            missing = monitor.join.missing(batch)
            monitor.join.adopt([in_redis[lab.request_id] for lab in missing if lab.request_id in in_redis])
            monitor.observe_labels(batch)
            flush()
    monitors.append(monitor)
    del events, x, in_redis
gc.collect()
grown = rss() - base
print(json.dumps({
    "rss_mb": grown,
    "pending": sum(m.join.pending[0] for m in monitors) / n_models,
    "checkpoint_bytes": len(json.dumps(monitors[0].checkpoint())),
}))
"""


def run(models: int, events: int, labels: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(models), str(events), "labels" if labels else "none"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--events", type=int, default=2500)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    rows = []
    for labels in (True, False):
        result = run(args.models, args.events, labels)
        rows.append((labels, result))
        print(labels, result, flush=True)
    lines = [
        "# Memory benchmark (worker RSS per model)",
        "",
        f"`python bench/memory.py --models {args.models} --events {args.events}`: "
        f"{args.models} ModelMonitors in one process, 20 features each, {args.events} "
        "inferences per model through the batch path (every detector calibrated).  RSS growth "
        "over the same process before the monitors; target: at most 500 MB for 1,000 models.",
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
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
