"""Label-free performance estimation: accuracy from calibrated confidence (CBPE)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special  # not scipy.stats: ~70 MB of RSS at import, special ~20

from detectors.windowed import WindowedTest


def isotonic(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Non-decreasing least-squares fit (pool adjacent violators).

    >>> isotonic(np.array([0.1, 0.3, 0.2, 0.9]), np.ones(4)).round(2).tolist()
    [0.1, 0.25, 0.25, 0.9]
    """
    blocks: list[list[float]] = []  # [mean, weight, length]
    for v, w in zip(values.tolist(), weights.tolist(), strict=True):
        blocks.append([v, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, n2 = blocks.pop()
            m1, w1, n1 = blocks.pop()
            total = w1 + w2
            blocks.append([(m1 * w1 + m2 * w2) / total if total else m2, total, n1 + n2])
    return np.concatenate([np.full(n, m) for m, _, n in blocks])


class CBPE(WindowedTest):
    """Confidence-based performance estimation: flag an accuracy drop before labels arrive.

    Inputs are ``(confidence, correct)`` pairs: the model's confidence in its prediction and
    whether it was right, or ``None`` while the label is unknown.  The reference is the first
    ``reference_size`` *labelled* pairs; unlabelled pairs seen meanwhile are skipped.  From it
    the confidence is calibrated (``bins`` equal-count bins, made monotone with pool adjacent
    violators, interpolated between bins), as NannyML's CBPE does.  Afterwards labels are not needed: a window's estimated
    accuracy is the mean calibrated confidence of its predictions, with the binomial standard
    error ``sqrt(sum p(1-p)) / n``.  An alarm is raised when the estimate falls more than the
    ``1 - alpha`` normal quantile of standard errors below the reference accuracy.

    The estimate is only as good as the calibration: it assumes that what changed is which
    inputs the model sees (covariate shift), not what the right answer is for a given input
    (concept drift, which needs labels: watch the error stream for that).

    Parameters:
        reference_size: Labelled pairs in the reference.
        window: Predictions per estimate.
        alpha: False-alarm probability per window.
        bins: Calibration bins.

    Examples:
        >>> import random
        >>> from detectors import CBPE
        >>> rng = random.Random(3)
        >>> def pairs(lo, hi, n, labelled):
        ...     out = []
        ...     for _ in range(n):
        ...         c = rng.uniform(lo, hi)
        ...         out.append((c, rng.random() < c if labelled else None))
        ...     return out
        >>> stream = pairs(0.7, 1.0, 1000, True) + pairs(0.7, 1.0, 1000, False)
        >>> stream += pairs(0.55, 0.85, 500, False)  # harder inputs, labels not yet known
        >>> detector = CBPE()
        >>> detector.update_many(stream).tolist()
        [2499]
        >>> round(detector.reference_accuracy, 2), round(detector.estimated_accuracy, 2)
        (0.84, 0.67)
    """

    name = "cbpe"
    input_kind = "scored"
    _test_fields = ("_pairs", "_edges", "_calibrated_bins", "_ref_acc", "_sum", "_var", "_est")

    def __init__(
        self, reference_size: int = 1000, window: int = 500, alpha: float = 1e-3, bins: int = 10
    ) -> None:
        if bins < 2:
            raise ValueError("bins must be >= 2")
        self.reference_size = reference_size
        self.window = window
        self.alpha = alpha
        self.bins = bins
        super().__init__()

    @property
    def threshold(self) -> float:
        return float(-special.ndtri(self.alpha))  # the normal's isf

    @property
    def reference_accuracy(self) -> float:
        return self._ref_acc

    @property
    def estimated_accuracy(self) -> float:
        """The last window's estimated accuracy (the reference accuracy before any window)."""
        return self._est

    def _accept(self, x: Any) -> tuple[float, bool | None] | None:
        try:
            confidence, correct = x
            confidence = float(confidence)
        except (TypeError, ValueError):
            return None
        if not 0.0 <= confidence <= 1.0:
            return None
        if correct is None or (isinstance(correct, float) and math.isnan(correct)):
            return confidence, None
        return confidence, bool(correct)

    def _batch(self, values: Any) -> Any:
        return list(values)

    def _update(self, x: Any) -> bool:
        if self._restart_pending:
            self._reset()
        if not self._calibrated and x[1] is None:
            return False  # the reference needs labels
        return super()._update(x)

    def _reference_values(self, accepted: list[tuple[float, bool | None]]) -> list:
        return [x for x in accepted if x[1] is not None]  # as _update: labelled ones only

    def calibrate(self, confidence: float) -> float:
        """The reference's accuracy at this confidence.

        Interpolated between the bins' mean confidences; outside the reference's range the
        nearest bin's calibration error (accuracy minus confidence) is carried on.
        """
        centres, values = self._edges, self._calibrated_bins
        if confidence <= centres[0]:
            estimate = confidence + values[0] - centres[0]
        elif confidence >= centres[-1]:
            estimate = confidence + values[-1] - centres[-1]
        else:
            estimate = float(np.interp(confidence, centres, values))
        return min(max(estimate, 0.0), 1.0)

    def _clear_reference(self) -> None:
        self._pairs: list[list[float]] = []
        self._edges: list[float] = []
        self._calibrated_bins: list[float] = []
        self._ref_acc = 0.0
        self._est = 0.0

    def _add_reference(self, x: tuple[float, bool]) -> None:
        self._pairs.append([x[0], float(x[1])])

    def _fit_reference(self) -> None:
        pairs = np.asarray(self._pairs)
        self._pairs = []
        order = np.argsort(pairs[:, 0], kind="stable")
        conf, correct = pairs[order, 0], pairs[order, 1]
        groups = np.array_split(np.arange(len(conf)), self.bins)
        self._edges = [float(conf[g].mean()) for g in groups]  # each bin's mean confidence
        means = np.array([correct[g].mean() for g in groups])
        self._calibrated_bins = isotonic(means, np.array([len(g) for g in groups], float)).tolist()
        self._ref_acc = self._est = float(correct.mean())
        self._clear_window()

    def _clear_window(self) -> None:
        self._sum = 0.0
        self._var = 0.0

    def _add_window(self, x: tuple[float, bool | None]) -> None:
        p = self.calibrate(x[0])
        self._sum += p
        self._var += p * (1 - p)

    def _add_window_many(self, pairs: list[tuple[float, bool | None]]) -> None:
        confidence = np.array([c for c, _ in pairs], dtype=np.float64)
        centres, values = np.asarray(self._edges), np.asarray(self._calibrated_bins)
        p = np.interp(confidence, centres, values)
        low, high = confidence <= centres[0], confidence >= centres[-1]
        p[low] = confidence[low] + values[0] - centres[0]
        p[high & ~low] = confidence[high & ~low] + values[-1] - centres[-1]
        p = np.clip(p, 0.0, 1.0)
        # cumsum adds in order, as one-by-one updates do
        self._sum = float(np.cumsum(np.concatenate([[self._sum], p]))[-1])
        self._var = float(np.cumsum(np.concatenate([[self._var], p * (1 - p)]))[-1])

    def _test_window(self) -> float:
        self._est = self._sum / self.window
        se = math.sqrt(max(self._var, 1e-12)) / self.window
        return (self._ref_acc - self._est) / se

    @classmethod
    def _unit_test_params(cls) -> dict[str, Any]:
        return {"reference_size": 300, "window": 100, "alpha": 1e-4, "bins": 5}
