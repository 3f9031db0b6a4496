"""Each feature's reference range, and how many live values fall outside it (data quality).

A feature's range is the [min, max] of its reference: the model's reference profile (its
training inputs, ``driftline reference set``) when it has one, otherwise the first
``learn`` values the feature shows on live traffic.  Once known, the range is fixed; every
later value is *checked* and counted as *outside* when it is below the minimum or above the
maximum.  The windows (:mod:`streams.rolling`) sum both per bucket, so each window reports
``out_of_range_rate`` = outside / checked.

On a stationary feature the rate is small but not zero: the range of 1,000 normal values spans
about +/- 3.2 sd, so about 0.15% of later values fall outside it (of a 20,000-row profile,
about 0.005%).  A feature that moves, or a unit change upstream (metres sent as millimetres),
shows at once.

>>> ranges = FeatureRanges(learn=3)
>>> ranges.check({"x": 1.0}), ranges.check({"x": 5.0}), ranges.check({"x": 3.0})
((0, 0), (0, 0), (0, 0))
>>> ranges.bounds["x"]
(1.0, 5.0)
>>> ranges.check({"x": 7.0}), ranges.check({"x": 2.0})
((1, 1), (1, 0))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

LEARN = 1000  # live values of a feature that set its range when no profile does


class FeatureRanges:
    """Per-feature reference ranges, learnt or given, and the counting against them."""

    def __init__(self, learn: int = LEARN) -> None:
        if learn < 1:
            raise ValueError("learn must be at least 1")
        self.learn = learn
        self.bounds: dict[str, tuple[float, float]] = {}  # fixed ranges
        self._learning: dict[str, list[float]] = {}  # name -> [count, min, max]

    def set_reference(self, columns: Mapping[str, Sequence[float]]) -> None:
        """Ranges from reference data (a profile's columns); they replace anything learnt."""
        for name, values in columns.items():
            if len(values):
                self.bounds[name] = (float(min(values)), float(max(values)))
                self._learning.pop(name, None)

    def check(self, features: Mapping[str, float]) -> tuple[int, int]:
        """One event's features: (values checked, values outside their range)."""
        checked = outside = 0
        for name, value in features.items():
            bound = self.bounds.get(name)
            if bound is None:
                self._learn_one(name, value)
                continue
            checked += 1
            outside += value < bound[0] or value > bound[1]
        return checked, outside

    def check_matrix(self, names: Sequence[str], matrix: np.ndarray) -> tuple[list, list]:
        """:meth:`check` on each row of ``matrix`` (columns named ``names``), in order,
        vectorised: per row (values checked, values outside)."""
        n = len(matrix)
        checked = np.zeros(n, dtype=np.int64)
        outside = np.zeros(n, dtype=np.int64)
        for j, name in enumerate(names):
            column = matrix[:, j]
            start = 0
            if name not in self.bounds:
                state = self._learning.setdefault(name, [0, np.inf, -np.inf])
                start = min(n, self.learn - int(state[0]))
                if start:
                    part = column[:start]
                    state[0] += start
                    state[1] = min(state[1], float(part.min()))
                    state[2] = max(state[2], float(part.max()))
                if state[0] >= self.learn:
                    self.bounds[name] = (state[1], state[2])
                    del self._learning[name]
                else:
                    continue
            lo, hi = self.bounds[name]
            rest = column[start:]
            checked[start:] += 1
            outside[start:] += (rest < lo) | (rest > hi)
        return checked.tolist(), outside.tolist()

    def _learn_one(self, name: str, value: float) -> None:
        state = self._learning.setdefault(name, [0, np.inf, -np.inf])
        state[0] += 1
        state[1] = min(state[1], float(value))
        state[2] = max(state[2], float(value))
        if state[0] >= self.learn:
            self.bounds[name] = (state[1], state[2])
            del self._learning[name]

    # -- checkpoints ---------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "learn": self.learn,
            "bounds": {k: list(v) for k, v in self.bounds.items()},
            "learning": {k: list(v) for k, v in self._learning.items()},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.bounds = {str(k): (float(v[0]), float(v[1])) for k, v in state["bounds"].items()}
        self._learning = {
            str(k): [int(v[0]), float(v[1]), float(v[2])] for k, v in state["learning"].items()
        }
