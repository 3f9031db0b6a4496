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
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from contracts.metrics import json_metric
from streams.tally import Tally, added

_AUC_BINS = 100
_REL_BINS = 10
_EPS = 1e-15


class ScoreStats:
    """One bucket's probability counts.  :meth:`freeze` packs them (the window does it for
    the buckets it checkpoints: they rarely change again), an add unpacks them."""

    __slots__ = ("ll_n", "ll_sum", "neg", "pos", "rel")

    def __init__(self) -> None:
        self.pos = Tally()  # P(positive) bin -> actual positives
        self.neg = Tally()  # ... -> actual negatives
        self.ll_sum, self.ll_n = 0.0, 0
        #: reliability bin -> [n, confidence sum, correct sum]; packed: float64 rows
        #: (bin, n, confidence sum, correct sum), exact for counts below 2**53
        self.rel: dict[int, list[float]] | bytes = {}

    def add(
        self,
        p_positive: float | None,
        actual_positive: bool,
        p_true: float | None,
        confidence: float | None,
        correct: bool,
    ) -> None:
        """One outcome (a run of one: :meth:`add_run`)."""
        self.add_run(ScoreRun([(p_positive, actual_positive, p_true, confidence, correct)]))

    def add_run(self, run: ScoreRun) -> None:
        """:meth:`add` of each outcome of ``run``, in its order: the same counts, and the same
        sums (each term added in turn, as one by one)."""
        if run.pos:
            self.pos.add_many(run.pos.items())
        if run.neg:
            self.neg.add_many(run.neg.items())
        ll_sum = self.ll_sum
        for term in run.log_terms:
            ll_sum -= term
        self.ll_sum, self.ll_n = ll_sum, self.ll_n + len(run.log_terms)
        if run.rel:
            rel = self.rel if isinstance(self.rel, dict) else self._thaw_rel()
            for b, (confidences, right) in run.rel.items():
                cell = rel.setdefault(b, [0, 0.0, 0])
                total = cell[1]
                for confidence in confidences:
                    total += confidence
                cell[0] += len(confidences)
                cell[1] = total
                cell[2] += right

    def _thaw_rel(self) -> dict[int, list[float]]:
        self.rel = self._rel_cells()
        return self.rel

    def _rel_cells(self) -> dict[int, list[float]]:
        if isinstance(self.rel, dict):
            return self.rel
        rows = np.frombuffer(self.rel, dtype="<f8").reshape(-1, 4).tolist()
        return {int(b): [int(n), c, int(k)] for b, n, c, k in rows}

    def merge(self, other: ScoreStats) -> None:
        """Add ``other``'s counts (a narrower bucket within this one)."""
        self.pos.add_many(other.pos.items())
        self.neg.add_many(other.neg.items())
        self.ll_sum, self.ll_n = self.ll_sum + other.ll_sum, self.ll_n + other.ll_n
        rel = self.rel if isinstance(self.rel, dict) else self._thaw_rel()
        for b, (n, c, k) in other._rel_cells().items():
            cell = rel.setdefault(b, [0, 0.0, 0])
            cell[0] += n
            cell[1] += c
            cell[2] += k

    def freeze(self) -> None:
        self.pos.freeze()
        self.neg.freeze()
        if isinstance(self.rel, dict):
            rows = [[b, *cell] for b, cell in sorted(self.rel.items())]
            self.rel = np.array(rows, dtype="<f8").tobytes()

    def to_list(self) -> list[Any]:
        return [
            self.pos.to_text(),
            self.neg.to_text(),
            self.ll_sum,
            self.ll_n,
            [[b, *cell] for b, cell in sorted(self._rel_cells().items())],
        ]

    @classmethod
    def from_list(cls, data: list[Any]) -> ScoreStats:
        """From :meth:`to_list` (the probability bins as base64, or, in checkpoints written
        before that, as ``[[bin, count], ...]``), frozen."""
        stats = cls()
        pos, neg, ll_sum, ll_n, rel = data
        stats.pos = Tally.from_text(pos) if isinstance(pos, str) else Tally.from_pairs(pos)
        stats.neg = Tally.from_text(neg) if isinstance(neg, str) else Tally.from_pairs(neg)
        stats.ll_sum, stats.ll_n = float(ll_sum), int(ll_n)
        stats.rel = {int(b): [int(n), float(c), int(k)] for b, n, c, k in rel}
        stats.freeze()
        return stats

    @staticmethod
    def summary(parts: list[ScoreStats]) -> dict[str, Any]:
        """The window's figures from its buckets' counts (summed in the order given)."""
        pos, neg = (
            added([p.pos for p in parts], _AUC_BINS),
            added([p.neg for p in parts], _AUC_BINS),
        )
        n, confidence, correct = np.zeros(_REL_BINS), np.zeros(_REL_BINS), np.zeros(_REL_BINS)
        ll_sum, ll_n = 0.0, 0
        for part in parts:
            ll_sum, ll_n = ll_sum + part.ll_sum, ll_n + part.ll_n
            for b, (k, c, right) in part._rel_cells().items():
                n[b] += k
                confidence[b] += c
                correct[b] += right
        return {
            "roc_auc": _auc(pos, neg),
            "log_loss": ll_sum / ll_n if ll_n else None,
            **_calibration(n, confidence, correct),
        }


class ScoreRun:
    """What a run of outcomes adds to a :class:`ScoreStats` (:meth:`ScoreStats.add_run`),
    worked out once for all the windows that count the run in one bucket: the bins' counts,
    and the terms of the sums in arrival order (the sums themselves depend on the bucket's).

    ``rows``: each outcome's arguments to :meth:`ScoreStats.add`, in order.

    >>> rows = [(0.9, True, 0.9, 0.9, True), (0.3, False, 0.7, 0.7, True)]
    >>> one, run = ScoreStats(), ScoreStats()
    >>> for row in rows:
    ...     one.add(*row)
    >>> run.add_run(ScoreRun(rows))
    >>> run.to_list() == one.to_list()
    True
    """

    __slots__ = ("log_terms", "neg", "pos", "rel")

    def __init__(
        self, rows: Iterable[tuple[float | None, bool, float | None, float | None, bool]]
    ) -> None:
        pos: Counter[int] = Counter()
        neg: Counter[int] = Counter()
        self.log_terms: list[float] = []
        #: reliability bin -> (the confidences in order, how many were correct)
        self.rel: dict[int, tuple[list[float], int]] = {}
        log = math.log
        for p_positive, actual_positive, p_true, confidence, correct in rows:
            if p_positive is not None and 0.0 <= p_positive <= 1.0:
                (pos if actual_positive else neg)[
                    min(int(p_positive * _AUC_BINS), _AUC_BINS - 1)
                ] += 1
            if p_true is not None and 0.0 <= p_true <= 1.0:
                self.log_terms.append(log(min(max(p_true, _EPS), 1.0 - _EPS)))
            if confidence is not None and 0.0 <= confidence <= 1.0:
                b = min(int(confidence * _REL_BINS), _REL_BINS - 1)
                confidences, right = self.rel.get(b, ([], 0))
                confidences.append(confidence)
                self.rel[b] = (confidences, right + (1 if correct else 0))
        self.pos, self.neg = pos, neg


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
