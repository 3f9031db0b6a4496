"""Test streams for each detector input kind (see ``DriftDetector.input_kind``)."""

from __future__ import annotations

from typing import Any

import numpy as np


def change_stream(kind: str, seed: int = 0, n: int = 6000) -> Any:
    """``n`` inputs with a clear change at ``n // 2``."""
    rng = np.random.default_rng(seed)
    half = n // 2
    if kind == "real":
        return np.r_[rng.normal(0, 1, half), rng.normal(1.5, 1, n - half)]
    if kind == "binary":
        return rng.binomial(1, np.r_[np.full(half, 0.1), np.full(n - half, 0.6)]).astype(float)
    if kind == "vector":
        rows = rng.normal(0, 1, (n, 4))
        rows[half:, :2] += 1.5
        return rows
    if kind == "category":
        before = rng.choice(["a", "b", "c"], half, p=[0.5, 0.3, 0.2])
        after = rng.choice(["a", "b", "c"], n - half, p=[0.2, 0.3, 0.5])
        return [*before.tolist(), *after.tolist()]
    if kind == "scored":
        conf = np.r_[rng.uniform(0.7, 1.0, half), rng.uniform(0.4, 0.7, n - half)]
        correct = rng.random(n) < conf
        return list(zip(conf.tolist(), correct.tolist(), strict=True))
    if kind == "latency":
        return np.r_[rng.lognormal(3.0, 0.3, half), rng.lognormal(6.0, 0.3, n - half)]
    if kind == "event_time":
        gaps = np.r_[rng.exponential(1 / 20, half), rng.exponential(1 / 5, n - half)]
        return 1000.0 + np.cumsum(gaps)
    raise ValueError(kind)


def stationary_stream(kind: str, seed: int, n: int) -> Any:
    """``n`` inputs with no change at all."""
    rng = np.random.default_rng(seed)
    if kind == "real":
        return rng.normal(0, 1, n)
    if kind == "binary":
        return rng.binomial(1, 0.1, n).astype(float)
    if kind == "vector":
        return rng.normal(0, 1, (n, 4))
    if kind == "category":
        return rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]).tolist()
    if kind == "scored":
        conf = rng.uniform(0.7, 1.0, n)
        return list(zip(conf.tolist(), (rng.random(n) < conf).tolist(), strict=True))
    if kind == "latency":
        return rng.lognormal(3.0, 0.3, n)
    if kind == "event_time":
        return 1000.0 + seed * 1e6 + np.cumsum(rng.exponential(1 / 20, n))
    raise ValueError(kind)


def constant_stream(kind: str, n: int) -> Any:
    return {
        "vector": np.full((n, 4), 3.25),
        "category": ["a"] * n,
        "scored": [(0.9, True)] * n,
        "event_time": np.full(n, 1000.0),
    }.get(kind, np.full(n, 3.25))


def invalid_inputs(kind: str) -> list[Any]:
    """Three inputs the detector must reject (count in ``n_rejected``) without changing."""
    return {
        "vector": [[np.nan, 0, 0, 0], [np.inf, 0, 0, 0], [1.0, 2.0]],
        "category": [None, float("nan"), None],
        "scored": [(float("nan"), True), (1.5, True), "garbage"],
    }.get(kind, [np.nan, np.inf, -np.inf])


def insert(kind: str, values: Any, positions: list[int], items: list[Any]) -> Any:
    """``values`` with ``items`` inserted before ``positions`` (as a list for uneven rows)."""
    out = list(values)
    for pos, item in sorted(zip(positions, items, strict=True), reverse=True):
        out.insert(pos, item)
    return out
