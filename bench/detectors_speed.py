"""Detector update speed, as a ratio to river's (Rust-backed) ADWIN measured in the same run.

    python bench/detectors_speed.py [--n 200000] [--repeat 3] [--out docs/speed-benchmark.md]

Prints updates/second for each driftline detector in batch mode (``update_many``) and for
river's ADWIN and PageHinkley looping ``update``; the ratio column is what to compare across
runs (these machines are shared and noisy; absolute figures are not comparable).  Also prints
each detector's checkpoint size after the run (issue 3's target: under 2 KB for univariate
detectors other than ADWIN).  Error-rate detectors are fed a Bernoulli(0.1) stream.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from river import drift

from detectors import REGISTRY


def best_rate(run, n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the table there (markdown)")
    args = parser.parse_args()
    values = np.random.default_rng(0).normal(0, 1, args.n)
    as_list = values.tolist()

    def river_loop(cls):
        def run():
            d = cls()
            for x in as_list:
                d.update(x)

        return run

    baseline = best_rate(river_loop(drift.ADWIN), args.n, args.repeat)
    rows = [
        ("river ADWIN (baseline)", baseline),
        ("river PageHinkley", best_rate(river_loop(drift.PageHinkley), args.n, args.repeat)),
    ]
    errors = np.random.default_rng(1).binomial(1, 0.1, args.n).astype(np.float64)
    sizes = {}
    for _name, cls in sorted(REGISTRY.items()):
        if cls.input_kind not in ("real", "binary"):
            continue  # rows, labels, timestamps: measured by their own tests, not here
        stream = errors if cls.input_kind == "binary" else values
        rows.append(
            (
                f"driftline {cls.__name__}.update_many",
                best_rate(lambda cls=cls, s=stream: cls().update_many(s), args.n, args.repeat),
            )
        )
        detector = cls()
        detector.update_many(stream)
        sizes[rows[-1][0]] = len(detector.get_state())
    lines = [
        f"`python bench/detectors_speed.py --n {args.n} --repeat {args.repeat}` on "
        f"{time.strftime('%Y-%m-%d')}: {args.n} values, best of {args.repeat}. Compare the ratio "
        "column across runs, not the absolute rates (shared, noisy machines). State bytes: the "
        "checkpoint after the run.",
        "",
        "| detector | updates/s | x river ADWIN | state bytes |",
        "|---|---|---|---|",
    ]
    for name, rate in rows:
        lines.append(f"| {name} | {rate:,.0f} | {rate / baseline:.2f} | {sizes.get(name, '')} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        args.out.write_text("# Detector speed\n\n" + table)


if __name__ == "__main__":
    main()
