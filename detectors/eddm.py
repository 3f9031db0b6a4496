"""EDDM: drift detection from the distance between errors."""

from __future__ import annotations

from detectors.base import DriftDetector, WarningLevel


class EDDM(WarningLevel, DriftDetector):
    """Early Drift Detection Method, numerically identical to ``river.drift.binary.EDDM``.

    Watches the distance (in values) between consecutive errors: its mean plus two standard
    deviations shrinks when errors become more frequent.  An alarm is raised when that level
    falls below ``beta`` times its maximum (a warning below ``alpha``).  Suited to gradual
    drift.  Any non-zero input counts as an error.  After an alarm, the next update starts
    afresh.

    Parameters:
        warm_start: Values and errors seen before a warning or alarm may be raised.
        alpha: Warning level, as a share of the maximum.
        beta: Alarm level, as a share of the maximum (``beta <= alpha``).

    Examples:
        >>> import random
        >>> from detectors import EDDM
        >>> rng = random.Random(12345)
        >>> detector = EDDM()
        >>> errors = [rng.random() < 0.1 for _ in range(2000)] + [rng.random() < 0.4 for _ in range(500)]
        >>> alarms = [i for i, error in enumerate(errors) if (detector.update(error), detector.drift_detected)[1]]
        >>> alarms  # the error rate rises at 2000: EDDM (like river's) fires often before it
        [213, 546, 831, 1091, 1397, 1739, 1973, 2082, 2166]

    References:
        M. Baena-Garcia et al., "Early drift detection method", 2006.
    """

    name = "eddm"
    input_kind = "binary"
    _state_fields = (
        "_n",
        "_last_error",
        "_n_errors",
        "_gaps_n",
        "_gaps_mean",
        "_gaps_s",
        "_level_max",
        "_level",
        "_warning",
        "_restart_pending",
    )

    def __init__(self, warm_start: int = 30, alpha: float = 0.95, beta: float = 0.9) -> None:
        if alpha < beta:
            raise ValueError("alpha must be greater than or equal to beta")
        if warm_start < 0:
            raise ValueError("warm_start must be >= 0")
        self.warm_start = warm_start
        self.alpha = alpha
        self.beta = beta
        super().__init__()

    @property
    def statistic(self) -> float:
        """The latest ``(mean + 2 sd)`` of error distances, as a share of its maximum."""
        return self._level

    @property
    def threshold(self) -> float:
        return self.beta

    def _reset(self) -> None:
        self._n = 0
        self._last_error = 0
        self._n_errors = 0
        self._gaps_n = 0  # Welford mean/variance of the distances between errors
        self._gaps_mean = 0.0
        self._gaps_s = 0.0
        self._level_max = -1.0
        self._level = 1.0
        self._warning = False
        self._restart_pending = False

    def _update(self, x: float) -> bool:
        if self._restart_pending:
            self._reset()
        self._n += 1
        if not x:
            return False
        self._n_errors += 1
        gap = self._n - self._last_error
        self._last_error = self._n
        old_mean = self._gaps_mean
        self._gaps_n += 1
        self._gaps_mean += (1.0 / self._gaps_n) * (gap - old_mean)
        self._gaps_s += (gap - old_mean) * (gap - self._gaps_mean)
        if self._n <= self.warm_start:
            return False
        var = self._gaps_s / (self._gaps_n - 1) if self._gaps_n > 1 else 0.0
        level = self._gaps_mean + 2 * var**0.5
        if level > self._level_max:
            self._level_max = level
        elif self._n_errors > self.warm_start:
            self._level = level / self._level_max
            if self._level < self.beta:
                self._restart_pending = True
            else:
                self._warning = self._level < self.alpha
        return self._restart_pending
