"""HDDM_W: drift in an error rate from McDiarmid bounds on weighted (EWMA) averages."""

from __future__ import annotations

import math

from detectors.base import DriftDetector, WarningLevel

# A weighted sample is [count, ewma, ibc]: ibc is the sum of squared weights that bounds it.
_EMPTY = (0, 0.0, 1.0)


class HDDM_W(WarningLevel, DriftDetector):
    """Hoeffding's-bound drift detection with weights, identical to river's ``HDDM_W``.

    Like :class:`HDDM_A` but on exponentially weighted moving averages (weight
    ``lambda_val`` on the newest value), which follow recent changes faster.  Any non-zero
    input counts as an error.  After an alarm, the next update starts afresh.

    Parameters:
        drift_confidence: Confidence level of the alarm test.
        warning_confidence: Confidence level of the warning test.
        lambda_val: Weight of the newest value in the moving averages.
        two_sided_test: Also flag decreases.

    Examples:
        >>> import random
        >>> from detectors import HDDM_W
        >>> rng = random.Random(12345)
        >>> detector = HDDM_W()
        >>> errors = [rng.random() < 0.1 for _ in range(2000)] + [rng.random() < 0.4 for _ in range(500)]
        >>> for i, error in enumerate(errors):
        ...     detector.update(error)
        ...     if detector.drift_detected:
        ...         print(f"change detected at index {i}")
        ...         break
        change detected at index 2063

    References:
        I. Frias-Blanco et al., "Online and non-parametric drift detection methods based on
        Hoeffding's bounds", IEEE TKDE 27, 2015.
    """

    name = "hddm_w"
    input_kind = "binary"
    _state_fields = (
        "_total",
        "_s1_incr",
        "_s2_incr",
        "_s1_decr",
        "_s2_decr",
        "_incr_cut",
        "_decr_cut",
        "_gap",
        "_warning",
        "_restart_pending",
    )

    def __init__(
        self,
        drift_confidence: float = 0.001,
        warning_confidence: float = 0.005,
        lambda_val: float = 0.05,
        two_sided_test: bool = False,
    ) -> None:
        if not (0 < drift_confidence < 1 and 0 < warning_confidence < 1):
            raise ValueError("confidences must be in (0, 1)")
        if not 0 < lambda_val <= 1:
            raise ValueError("lambda_val must be in (0, 1]")
        self.drift_confidence = drift_confidence
        self.warning_confidence = warning_confidence
        self.lambda_val = lambda_val
        self.two_sided_test = two_sided_test
        # Constant factor of the bounds, computed once (the same values river computes).
        self._log = {c: math.log(1 / c) for c in (drift_confidence, warning_confidence)}
        super().__init__()

    @property
    def statistic(self) -> float:
        """Rise of the recent weighted mean over the cut-point one, in units of the bound."""
        return self._gap

    @property
    def threshold(self) -> float:
        return 1.0

    def _reset(self) -> None:
        self._total = list(_EMPTY)
        self._s1_incr, self._s2_incr = list(_EMPTY), list(_EMPTY)
        self._s1_decr, self._s2_decr = list(_EMPTY), list(_EMPTY)
        self._incr_cut = math.inf
        self._decr_cut = -math.inf
        self._gap = 0.0
        self._warning = False
        self._restart_pending = False

    def _add(self, sample: list, x: float) -> None:
        lam = self.lambda_val
        sample[1] = x if sample[0] == 0 else lam * x + (1 - lam) * sample[1]
        sample[0] += 1
        sample[2] = lam * lam + (1 - lam) ** 2 * sample[2]

    def _bound(self, ibc: float, confidence: float) -> float:
        return math.sqrt(ibc * self._log[confidence] / 2)

    def _changed(self, low: list, high: list, confidence: float) -> tuple[bool, float]:
        """Whether ``high``'s mean exceeds ``low``'s by more than the bound, and their ratio."""
        if not (low[0] and high[0]):
            return False, 0.0
        bound = self._bound(low[2] + high[2], confidence)
        diff = high[1] - low[1]
        return diff > bound, diff / bound

    def _update(self, x: float) -> bool:
        if self._restart_pending:
            self._reset()
        x = 1.0 if x else 0.0
        self._add(self._total, x)
        eps = self._bound(self._total[2], self.drift_confidence)
        if self._total[1] + eps < self._incr_cut:
            self._incr_cut = self._total[1] + eps
            self._s1_incr, self._s2_incr = list(self._total), list(_EMPTY)
        else:
            self._add(self._s2_incr, x)
        drift, self._gap = self._changed(self._s1_incr, self._s2_incr, self.drift_confidence)
        self._warning = (
            not drift and self._changed(self._s1_incr, self._s2_incr, self.warning_confidence)[0]
        )
        eps = self._bound(self._total[2], self.drift_confidence)
        if self._total[1] - eps > self._decr_cut:
            self._decr_cut = self._total[1] - eps
            self._s1_decr, self._s2_decr = list(self._total), list(_EMPTY)
        else:
            self._add(self._s2_decr, x)
        if self.two_sided_test:
            if self._changed(self._s2_decr, self._s1_decr, self.drift_confidence)[0]:
                drift = True
            elif self._changed(self._s2_decr, self._s1_decr, self.warning_confidence)[0]:
                self._warning = True
        self._restart_pending = drift
        return drift
