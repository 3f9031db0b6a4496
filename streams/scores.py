"""Probability quality per window bucket: ROC-AUC, log loss, calibration error (pure).

A :class:`ScoreStats` sits in each time bucket of a :class:`~streams.rolling.WindowedMetrics`
and merges by addition, like the bucket's counts, so a window's figures come from fixed memory:

- **ROC-AUC** (binary): histograms of P(positive) for actual positives and negatives, 100 bins;
  the Mann-Whitney statistic over the bins, pairs in one bin counted as ties (so it is the AUC
  of scores rounded to 0.01);
- **log loss**: the mean of -log p(true class), p clipped to [1e-15, 1 - 1e-15];
- **expected calibration error**: 10 reliability bins on the confidence; the count-weighted
  mean gap between each bin's accuracy and its mean confidence, with the bins themselves.

>>> stats = ScoreStats()
>>> for p, actual in [(0.9, True), (0.8, True), (0.3, False), (0.6, False)]:
...     stats.add(p_positive=p, actual_positive=actual, p_true=p if actual else 1 - p,
...               confidence=max(p, 1 - p), correct=(p >= 0.5) == actual)
>>> summary = ScoreStats.summary([stats])
>>> summary["roc_auc"], round(summary["log_loss"], 3)
(1.0, 0.4)
"""

from __future__ import annotations

import json
import math
from typing import Any

_AUC_BINS = 100
_REL_BINS = 10
_EPS = 1e-15


class ScoreStats:
    __slots__ = ("ll_n", "ll_sum", "neg", "pos", "rel")

    def __init__(self) -> None:
        self.pos: dict[int, int] = {}
        self.neg: dict[int, int] = {}
        self.ll_sum, self.ll_n = 0.0, 0
        self.rel: dict[int, list[float]] = {}  # bin -> [n, confidence sum, correct sum]

    def add(
        self,
        p_positive: float | None,
        actual_positive: bool,
        p_true: float | None,
        confidence: float | None,
        correct: bool,
    ) -> None:
        if p_positive is not None and 0.0 <= p_positive <= 1.0:
            side = self.pos if actual_positive else self.neg
            b = min(int(p_positive * _AUC_BINS), _AUC_BINS - 1)
            side[b] = side.get(b, 0) + 1
        if p_true is not None and 0.0 <= p_true <= 1.0:
            self.ll_sum -= math.log(min(max(p_true, _EPS), 1.0 - _EPS))
            self.ll_n += 1
        if confidence is not None and 0.0 <= confidence <= 1.0:
            b = min(int(confidence * _REL_BINS), _REL_BINS - 1)
            cell = self.rel.setdefault(b, [0, 0.0, 0])
            cell[0] += 1
            cell[1] += confidence
            cell[2] += 1 if correct else 0

    def to_list(self) -> list[Any]:
        return [
            sorted(self.pos.items()),
            sorted(self.neg.items()),
            self.ll_sum,
            self.ll_n,
            [[b, *cell] for b, cell in sorted(self.rel.items())],
        ]

    @classmethod
    def from_list(cls, data: list[Any]) -> ScoreStats:
        stats = cls()
        pos, neg, stats.ll_sum, stats.ll_n, rel = data
        stats.pos = {int(b): int(n) for b, n in pos}
        stats.neg = {int(b): int(n) for b, n in neg}
        stats.ll_sum, stats.ll_n = float(stats.ll_sum), int(stats.ll_n)
        stats.rel = {int(b): [int(n), float(c), int(k)] for b, n, c, k in rel}
        return stats

    @staticmethod
    def summary(parts: list[ScoreStats]) -> dict[str, Any]:
        pos: dict[int, int] = {}
        neg: dict[int, int] = {}
        rel: dict[int, list[float]] = {}
        ll_sum, ll_n = 0.0, 0
        for part in parts:
            for b, n in part.pos.items():
                pos[b] = pos.get(b, 0) + n
            for b, n in part.neg.items():
                neg[b] = neg.get(b, 0) + n
            ll_sum, ll_n = ll_sum + part.ll_sum, ll_n + part.ll_n
            for b, (n, c, k) in part.rel.items():
                cell = rel.setdefault(b, [0, 0.0, 0])
                cell[0], cell[1], cell[2] = cell[0] + n, cell[1] + c, cell[2] + k
        return {
            "roc_auc": _auc(pos, neg),
            "log_loss": ll_sum / ll_n if ll_n else None,
            **_calibration(rel),
        }


def _auc(pos: dict[int, int], neg: dict[int, int]) -> float | None:
    n_pos, n_neg = sum(pos.values()), sum(neg.values())
    if not n_pos or not n_neg:
        return None
    below, u = 0, 0.0
    for b in range(_AUC_BINS):
        p, n = pos.get(b, 0), neg.get(b, 0)
        u += p * (below + 0.5 * n)
        below += n
    return u / (n_pos * n_neg)


def _calibration(rel: dict[int, list[float]]) -> dict[str, Any]:
    total = sum(cell[0] for cell in rel.values())
    if not total:
        return {"ece": None, "reliability": None}
    bins = [
        {"from": b / _REL_BINS, "n": int(n), "confidence": c / n, "accuracy": k / n}
        for b, (n, c, k) in sorted(rel.items())
    ]
    ece = sum(x["n"] / total * abs(x["accuracy"] - x["confidence"]) for x in bins)
    return {"ece": ece, "reliability": json.dumps(bins)}
