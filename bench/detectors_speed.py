"""Detector update speed, as a ratio to river's (Rust-backed) ADWIN measured in the same run.

    python bench/detectors_speed.py [--n 200000] [--repeat 3]

Prints updates/second for each driftline detector in batch mode (``update_many``) and for
river's ADWIN and PageHinkley looping ``update``; the ratio column is what to compare across
runs (these machines are shared and noisy; absolute figures are not comparable).
"""

from __future__ import annotations

import argparse
import time

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
    for _name, cls in sorted(REGISTRY.items()):
        rows.append(
            (
                f"driftline {cls.__name__}.update_many",
                best_rate(lambda cls=cls: cls().update_many(values), args.n, args.repeat),
            )
        )
    print(f"{args.n} N(0,1) values, best of {args.repeat}")
    print(f"{'detector':40s} {'updates/s':>12s} {'x river ADWIN':>14s}")
    for name, rate in rows:
        print(f"{name:40s} {rate:12,.0f} {rate / baseline:14.2f}")


if __name__ == "__main__":
    main()
