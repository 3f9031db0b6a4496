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

import math
from typing import Any

import numpy as np

from contracts.metrics import json_metric

_AUC_BINS = 100
_REL_BINS = 10
_EPS = 1e-15


# a bucket's counts as one row (:meth:`ScoreStats.dense`): positives and negatives per
# P(positive) bin, then per reliability bin its count, confidence sum and correct count
_NEG, _REL_N = _AUC_BINS, 2 * _AUC_BINS
_REL_C, _REL_K = _REL_N + _REL_BINS, _REL_N + 2 * _REL_BINS
_ROW = _REL_N + 3 * _REL_BINS


class ScoreStats:
    __slots__ = ("_dense", "ll_n", "ll_sum", "neg", "pos", "rel")

    def __init__(self) -> None:
        self.pos: dict[int, int] = {}
        self.neg: dict[int, int] = {}
        self.ll_sum, self.ll_n = 0.0, 0
        self.rel: dict[int, list[float]] = {}  # bin -> [n, confidence sum, correct sum]
        self._dense: np.ndarray | None = None  # kept until the next add

    def add(
        self,
        p_positive: float | None,
        actual_positive: bool,
        p_true: float | None,
        confidence: float | None,
        correct: bool,
    ) -> None:
        self._dense = None
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

    def dense(self) -> np.ndarray:
        """The counts as one row of floats (exact for counts below 2**53), kept until the next
        :meth:`add`: a window's summary adds the rows of its buckets, most of which do not
        change between two reads."""
        if self._dense is None:
            row = np.zeros(_ROW)
            row[list(self.pos)] = list(self.pos.values())
            row[[_NEG + b for b in self.neg]] = list(self.neg.values())
            for b, (n, c, k) in self.rel.items():
                row[_REL_N + b], row[_REL_C + b], row[_REL_K + b] = n, c, k
            self._dense = row
        return self._dense

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
        total = np.sum([part.dense() for part in parts], axis=0) if parts else np.zeros(_ROW)
        ll_sum, ll_n = 0.0, 0
        for part in parts:
            ll_sum, ll_n = ll_sum + part.ll_sum, ll_n + part.ll_n
        return {
            "roc_auc": _auc(total[:_NEG], total[_NEG:_REL_N]),
            "log_loss": ll_sum / ll_n if ll_n else None,
            **_calibration(total[_REL_N:_REL_C], total[_REL_C:_REL_K], total[_REL_K:]),
        }


def _auc(pos: np.ndarray, neg: np.ndarray) -> float | None:
    """The Mann-Whitney statistic over the bins (ties within a bin count half); the counts
    and products are integers and halves, exact in floats."""
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    if not n_pos or not n_neg:
        return None
    below = np.cumsum(neg) - neg  # negatives in lower bins
    return float((pos * (below + 0.5 * neg)).sum()) / (n_pos * n_neg)


def _calibration(counts: np.ndarray, confidence: np.ndarray, correct: np.ndarray) -> dict[str, Any]:
    total = int(counts.sum())
    if not total:
        return {"ece": None, "reliability": None}
    bins = [
        {
            "from": b / _REL_BINS,
            "n": int(counts[b]),
            "confidence": float(confidence[b] / counts[b]),
            "accuracy": float(correct[b] / counts[b]),
        }
        for b in np.flatnonzero(counts).tolist()
    ]
    ece = sum(x["n"] / total * abs(x["accuracy"] - x["confidence"]) for x in bins)
    return {"ece": ece, "reliability": json_metric(bins)}
