"""DDM: the drift detection method for 0/1 error streams."""

from __future__ import annotations

import math

from detectors.base import DriftDetector, WarningLevel


class DDM(WarningLevel, DriftDetector):
    """Drift Detection Method (Gama et al.), numerically identical to ``river.drift.binary.DDM``.

    Tracks the running error rate ``p`` and its standard deviation ``s = sqrt(p(1-p)/n)``,
    remembers the point where ``p + s`` was lowest, and raises a warning when ``p + s`` exceeds
    that minimum by ``warning_threshold`` standard deviations and an alarm at
    ``drift_threshold``.  Inputs are error indicators: any non-zero value counts as an error.
    After an alarm, the next update starts afresh.

    Parameters:
        warm_start: Values seen before a warning or alarm may be raised.
        warning_threshold: Standard deviations above the minimum for a warning.
        drift_threshold: Standard deviations above the minimum for an alarm.

    Examples:
        >>> import random
        >>> from detectors import DDM
        >>> rng = random.Random(12345)
        >>> detector = DDM()
        >>> errors = [rng.random() < 0.1 for _ in range(2000)] + [rng.random() < 0.4 for _ in range(500)]
        >>> for i, error in enumerate(errors):
        ...     detector.update(error)
        ...     if detector.drift_detected:
        ...         print(f"change detected at index {i}")
        ...         break
        change detected at index 2083

    References:
        J. Gama, P. Medas, G. Castillo, P. Rodrigues, "Learning with drift detection", SBIA 2004.
    """

    name = "ddm"
    input_kind = "binary"

    def __init__(
        self, warm_start: int = 30, warning_threshold: float = 2.0, drift_threshold: float = 3.0
    ) -> None:
        if warm_start < 0 or warning_threshold <= 0 or drift_threshold <= 0:
            raise ValueError("need warm_start >= 0 and positive thresholds")
        self.warm_start = warm_start
        self.warning_threshold = warning_threshold
        self.drift_threshold = drift_threshold
        super().__init__()

    @property
    def statistic(self) -> float:
        """Standard deviations of ``p + s`` above the lowest ``p_min + s_min`` seen."""
        if self._s_min is None or self._s_min == 0:
            return 0.0
        return (self._p + self._s - self._p_min) / self._s_min

    @property
    def threshold(self) -> float:
        return self.drift_threshold

    def _reset(self) -> None:
        self._n = 0
        self._p = 0.0
        self._s = 0.0
        self._p_min: float | None = None
        self._s_min: float | None = None
        self._ps_min = math.inf
        self._warning = False
        self._restart_pending = False

    def _update(self, x: float) -> bool:
        if self._restart_pending:
            self._reset()
        self._n += 1
        self._p += (1.0 / self._n) * ((1.0 if x else 0.0) - self._p)
        p, n = self._p, self._n
        self._s = s = math.sqrt(p * (1 - p) / n)
        if n <= self.warm_start:
            return False
        if p + s <= self._ps_min:
            self._p_min, self._s_min = p, s
            self._ps_min = p + s
        self._warning = p + s > self._p_min + self.warning_threshold * self._s_min
        if p + s > self._p_min + self.drift_threshold * self._s_min:
            self._warning = False
            self._restart_pending = True
        return self._restart_pending

    _state_fields = (
        "_n",
        "_p",
        "_s",
        "_p_min",
        "_s_min",
        "_ps_min",
        "_warning",
        "_restart_pending",
    )
