"""Detection quality: false alarms on stationary streams, detection rate and delay on changes.

    python bench/detection.py [--runs 30] [--out docs/detection-benchmark.md]

Streams (seeds fixed here, so a run is reproducible):
- stationary, 100k values each: N(0,1), Student-t(3), AR(1) phi=0.5, Bernoulli(0.10);
  reported as false alarms per 100k values.
- change at value 5,000, 3,000 values after it: mean +0.25/+0.5/+1 sigma, a linear ramp to
  +1 sigma over 2,000 values, a doubling of the standard deviation, and error rate
  0.10 -> 0.15/0.20/0.30; reported as the share of runs with an alarm within 3,000 values of
  the change, and the mean delay of those alarms.

Each driftline detector with its default parameters is run beside river's default on the same
values.  Scoring is by tolerance window (Hinkley-style delay), not by pinned indices.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from river import drift

import detectors

CHANGE_AT = 5_000
HORIZON = 3_000
STATIONARY_N = 100_000
STATIONARY_SEEDS = 5


def ar1(rng: np.random.Generator, n: int, phi: float = 0.5) -> np.ndarray:
    noise = rng.normal(0, 1, n) * np.sqrt(1 - phi**2)  # unit marginal variance
    out = np.empty(n)
    prev = 0.0
    for i in range(n):
        prev = phi * prev + noise[i]
        out[i] = prev
    return out


STATIONARY: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "N(0,1)": lambda r: r.normal(0, 1, STATIONARY_N),
    "Student-t(3)": lambda r: r.standard_t(3, STATIONARY_N),
    "AR(1) phi=0.5": lambda r: ar1(r, STATIONARY_N),
    "Bernoulli(0.10)": lambda r: r.binomial(1, 0.10, STATIONARY_N).astype(float),
}


def _shift(delta: float) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda r: np.r_[r.normal(0, 1, CHANGE_AT), r.normal(delta, 1, HORIZON)]


def _ramp(r: np.random.Generator) -> np.ndarray:
    drift_part = np.minimum(np.arange(HORIZON) / 2000.0, 1.0)
    return np.r_[r.normal(0, 1, CHANGE_AT), r.normal(0, 1, HORIZON) + drift_part]


def _rate(p: float) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda r: np.r_[r.binomial(1, 0.10, CHANGE_AT), r.binomial(1, p, HORIZON)].astype(float)


CHANGES: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "mean +0.25 sigma": _shift(0.25),
    "mean +0.5 sigma": _shift(0.5),
    "mean +1 sigma": _shift(1.0),
    "ramp to +1 sigma / 2k": _ramp,
    "std x2": lambda r: np.r_[r.normal(0, 1, CHANGE_AT), r.normal(0, 2, HORIZON)],
    "error 0.10 -> 0.15": _rate(0.15),
    "error 0.10 -> 0.20": _rate(0.20),
    "error 0.10 -> 0.30": _rate(0.30),
}


def _river_alarms(make: Callable[[], object], values: np.ndarray) -> list[int]:
    d = make()
    out = []
    for i, x in enumerate(values.tolist()):
        d.update(x)
        if d.drift_detected:
            out.append(i)
    return out


DEFAULT = detectors.CUSUM  # what MonitorConfig puts on features, scores and error streams
BINARY_STREAMS = {"Bernoulli(0.10)"} | {name for name in CHANGES if name.startswith("error")}

Player = tuple[Callable[[np.ndarray], list[int]], str]  # (alarms of a stream, input kind)


def contenders() -> dict[str, Player]:
    """River's defaults beside each driftline detector's defaults.

    Error-rate detectors (input kind "binary") only run on the 0/1 streams; the others run on
    every stream.  Detectors of other input kinds (rows, labels, latencies, timestamps) are
    not univariate-stream detectors and are left out.  River's KSWIN is left out: its scipy test at every value makes it too slow
    for 100k-value streams.
    """
    out: dict[str, Player] = {
        "river ADWIN": (lambda v: _river_alarms(drift.ADWIN, v), "real"),
        "river PageHinkley": (lambda v: _river_alarms(drift.PageHinkley, v), "real"),
    }
    for river_cls in (drift.binary.DDM, drift.binary.EDDM, drift.binary.HDDMA, drift.binary.HDDMW):
        out[f"river {river_cls.__name__}"] = (
            lambda v, c=river_cls: _river_alarms(c, v),
            "binary",
        )
    for cls in sorted(detectors.REGISTRY.values(), key=lambda c: c.name):
        if cls.input_kind not in ("real", "binary"):
            continue  # rows, labels, timestamps: not these streams
        label = f"driftline {cls.__name__}" + (" (default)" if cls is DEFAULT else "")
        out[label] = (lambda v, cls=cls: cls().update_many(v).tolist(), cls.input_kind)
    return out


def first_after(alarms: list[int], start: int, horizon: int) -> int | None:
    for a in alarms:
        if start <= a < start + horizon:
            return a
    return None


def false_alarms(alarms_of: Callable[[np.ndarray], list[int]], only: set | None) -> dict:
    """False alarms per 100k values on each stationary stream (or those in ``only``)."""
    out = {}
    for s_index, (stream, make) in enumerate(STATIONARY.items()):
        if only is not None and stream not in only:
            continue
        counts = [
            len(alarms_of(make(np.random.default_rng(1000 + 10 * s_index + k))))
            for k in range(STATIONARY_SEEDS)
        ]
        out[stream] = float(np.mean(counts)) * 100_000 / STATIONARY_N
    return out


def detections(alarms_of: Callable[[np.ndarray], list[int]], runs: int, only: set | None) -> dict:
    """(share detected within the horizon, mean delay or None) on each change stream."""
    out = {}
    for c_index, (stream, make) in enumerate(CHANGES.items()):
        if only is not None and stream not in only:
            continue
        delays = []
        for k in range(runs):
            values = make(np.random.default_rng(5000 + 100 * c_index + k))
            hit = first_after(alarms_of(values), CHANGE_AT, HORIZON)
            if hit is not None:
                delays.append(hit - CHANGE_AT)
        out[stream] = (len(delays) / runs, float(np.mean(delays)) if delays else None)
    return out


def targets(fa: dict[str, float], det: dict[str, tuple], adwin: dict[str, tuple]) -> list[str]:
    """Issue 3's targets for the default detector, checked against this run's river ADWIN."""
    rows = []
    for stream, rate in fa.items():
        rows.append((f"false alarms per 100k, {stream}", "<= 1", f"{rate:.1f}", rate <= 1))
    for stream, (share, _delay) in det.items():
        rows.append(
            (f"detected within {HORIZON}, {stream}", ">= 95%", f"{share:.0%}", share >= 0.95)
        )
    for stream, (_share, delay) in det.items():
        if stream == "std x2":
            continue  # the issue names ADWIN's delays on mean shifts, the ramp and error rates
        theirs = adwin[stream][1]
        ok = delay is not None and theirs is not None and delay <= theirs
        rows.append(
            (
                f"mean delay, {stream}",
                f"<= river ADWIN ({theirs:.0f})" if theirs is not None else "-",
                f"{delay:.0f}" if delay is not None else "-",
                ok,
            )
        )
    lines = ["| target | required | measured | met |", "|---|---|---|---|"]
    lines += [f"| {t} | {r} | {m} | {'yes' if ok else '**no**'} |" for t, r, m, ok in rows]
    return lines


def run(runs: int) -> str:
    players = contenders()
    fa, det = {}, {}
    for name, (alarms_of, kind) in players.items():
        only = BINARY_STREAMS if kind == "binary" else None
        fa[name] = false_alarms(alarms_of, only)
        det[name] = detections(alarms_of, runs, only)

    def cell_fa(name: str, stream: str) -> str:
        return f"{fa[name][stream]:.1f}" if stream in fa[name] else "n/a"

    def cell_det(name: str, stream: str) -> str:
        if stream not in det[name]:
            return "n/a"
        share, delay = det[name][stream]
        return f"{share:.0%} / {delay:.0f}" if delay is not None else "0% / -"

    lines = [
        f"Generated by `python bench/detection.py --runs {runs}` on {time.strftime('%Y-%m-%d')}.",
        "",
        f"## False alarms per 100k values (stationary streams, {STATIONARY_SEEDS} seeds each)",
        "",
        "| detector | " + " | ".join(STATIONARY) + " |",
        "|---" * (len(STATIONARY) + 1) + "|",
    ]
    lines += [f"| {n} | " + " | ".join(cell_fa(n, s) for s in STATIONARY) + " |" for n in players]
    lines += [
        "",
        f"## Detected within {HORIZON} values of the change (share of {runs} runs) / mean delay",
        "",
        "| detector | " + " | ".join(CHANGES) + " |",
        "|---" * (len(CHANGES) + 1) + "|",
    ]
    lines += [f"| {n} | " + " | ".join(cell_det(n, s) for s in CHANGES) + " |" for n in players]
    default = next(n for n in players if n.endswith("(default)"))
    lines += [
        "",
        f"## Issue 3 targets for the default detector ({default.split()[1]}), this run",
        "",
        *targets(fa[default], det[default], det["river ADWIN"]),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    table = run(args.runs)
    print(table)
    if args.out:
        args.out.write_text("# Detection benchmark\n\n" + table)


if __name__ == "__main__":
    main()
