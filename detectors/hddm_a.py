"""HDDM_A: drift in an error rate from Hoeffding bounds on running averages."""

from __future__ import annotations

import math

from detectors.base import DriftDetector, WarningLevel


class HDDM_A(WarningLevel, DriftDetector):
    """Hoeffding's-bound drift detection with averages, identical to river's ``HDDM_A``.

    Compares the mean of everything seen with the mean up to the cut point where the
    Hoeffding-bounded mean was lowest; an alarm when the difference exceeds the bound for
    ``drift_confidence``.  With ``two_sided_test`` falls are flagged too.  Any non-zero input
    counts as an error.  After an alarm, the next update starts afresh.

    Parameters:
        drift_confidence: Confidence level of the alarm test.
        warning_confidence: Confidence level of the warning test.
        two_sided_test: Also flag decreases.

    Examples:
        >>> import random
        >>> from detectors import HDDM_A
        >>> rng = random.Random(12345)
        >>> detector = HDDM_A()
        >>> errors = [rng.random() < 0.1 for _ in range(2000)] + [rng.random() < 0.4 for _ in range(500)]
        >>> for i, error in enumerate(errors):
        ...     detector.update(error)
        ...     if detector.drift_detected:
        ...         print(f"change detected at index {i}")
        ...         break
        change detected at index 2106

    References:
        I. Frias-Blanco et al., "Online and non-parametric drift detection methods based on
        Hoeffding's bounds", IEEE TKDE 27, 2015.
    """

    name = "hddm_a"
    input_kind = "binary"
    _state_fields = ("_z", "_x_min", "_x_max", "_gap", "_warning", "_restart_pending")

    def __init__(
        self,
        drift_confidence: float = 0.001,
        warning_confidence: float = 0.005,
        two_sided_test: bool = False,
    ) -> None:
        if not (0 < drift_confidence < 1 and 0 < warning_confidence < 1):
            raise ValueError("confidences must be in (0, 1)")
        self.drift_confidence = drift_confidence
        self.warning_confidence = warning_confidence
        self.two_sided_test = two_sided_test
        # Constant factors of the bounds, computed once (the same values river computes).
        self._log_drift = math.log(1.0 / drift_confidence)
        self._log2 = {c: math.log(2.0 / c) for c in (drift_confidence, warning_confidence)}
        super().__init__()

    @property
    def statistic(self) -> float:
        """Rise of the overall mean over the cut-point mean, in units of the alarm bound."""
        return self._gap

    @property
    def threshold(self) -> float:
        return 1.0

    def _reset(self) -> None:
        # Each running mean is [count, mean].
        self._z = [0, 0.0]
        self._x_min = [0, 0.0]
        self._x_max = [0, 0.0]
        self._gap = 0.0
        self._warning = False
        self._restart_pending = False

    def _bound(self, n: int) -> float:
        return math.sqrt(1.0 / (2 * n) * self._log_drift)

    def _test(self, cut: list, confidence: float, sign: float) -> tuple[bool, float]:
        """Whether ``sign * (mean - cut mean)`` reaches its Hoeffding bound, and their ratio."""
        n, n_cut = self._z[0], cut[0]
        if n_cut == n:
            return False, 0.0
        m = (n - n_cut) / n_cut * (1.0 / n)
        eps = math.sqrt(m / 2 * self._log2[confidence])
        diff = sign * (self._z[1] - cut[1])
        return diff >= eps, diff / eps

    def _update(self, x: float) -> bool:
        if self._restart_pending:
            self._reset()
        z = self._z
        z[0] += 1
        z[1] += (1.0 / z[0]) * ((1.0 if x else 0.0) - z[1])
        if self._x_min[0] == 0:
            self._x_min = list(z)
        if self._x_max[0] == 0:
            self._x_max = list(z)
        eps_z = self._bound(z[0])
        if self._x_min[1] + self._bound(self._x_min[0]) >= z[1] + eps_z:
            self._x_min = list(z)
        if self._x_max[1] - self._bound(self._x_max[0]) <= z[1] - eps_z:
            self._x_max = list(z)
        drift, self._gap = self._test(self._x_min, self.drift_confidence, 1.0)
        self._warning = not drift and self._test(self._x_min, self.warning_confidence, 1.0)[0]
        if self.two_sided_test:
            if self._test(self._x_max, self.drift_confidence, -1.0)[0]:
                drift = True
            elif self._test(self._x_max, self.warning_confidence, -1.0)[0]:
                self._warning = True
        self._restart_pending = drift
        return drift
