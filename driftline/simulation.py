"""A simulated model and its traffic, with a drift injected on cue (used by the demo and tests).

Before the drift the label follows ``2*x1 - x2 + 0.5*x3``; from ``drift_at`` on it follows
``-1.5*x1 + 2*x4`` (concept drift) and ``x3`` moves up by 1.5 (covariate shift).  The champion is
a logistic regression trained at start-up on the first regime, so no model is downloaded.

>>> scenario = DriftingScenario(seed=1, drift_at=100)
>>> champion = scenario.train_champion(n=2000)
>>> before = [scenario.sample(i) for i in range(100)]
>>> after = [scenario.sample(i) for i in range(100, 600)]
>>> acc = lambda rows: sum(champion.predict(x) == y for x, y in rows) / len(rows)
>>> acc(before) > 0.85, acc(after) < 0.7
(True, True)
"""

from __future__ import annotations

import random

from learners.gate import train_challenger
from learners.model import LinearModel

FEATURES = ("x1", "x2", "x3", "x4")


class DriftingScenario:
    def __init__(self, seed: int = 7, drift_at: int = 6000) -> None:
        self.rng = random.Random(seed)
        self.drift_at = drift_at

    def sample(self, i: int) -> tuple[dict[str, float], int]:
        g = self.rng.gauss
        x = {name: g(0.0, 1.0) for name in FEATURES}
        if i < self.drift_at:
            z = 2.0 * x["x1"] - x["x2"] + 0.5 * x["x3"]
        else:
            x["x3"] += 1.5
            z = -1.5 * x["x1"] + 2.0 * x["x4"]
        return x, int(z + g(0.0, 0.5) > 0)

    def latency_ms(self, i: int) -> float:
        return self.rng.lognormvariate(2.3, 0.35)  # median ~10 ms

    def train_champion(self, n: int = 3000) -> LinearModel:
        rows = [self.sample(-1) for _ in range(n)]  # index < drift_at: first regime
        return train_challenger(LinearModel(), rows, epochs=2)
