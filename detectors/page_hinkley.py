"""Page-Hinkley test for a change in the mean."""

from __future__ import annotations

from typing import Any

from detectors.base import DriftDetector

_MODES = ("up", "down", "both")


class PageHinkley(DriftDetector):
    """Page-Hinkley cumulative test, numerically identical to ``river.drift.PageHinkley``.

    Parameters:
        min_instances: Values seen before an alarm may be raised.
        delta: Magnitude of change tolerated before the cumulative sums move.
        threshold: Alarm level for the cumulative deviation (river's ``threshold``).
        alpha: Forgetting factor applied to the cumulative sums.
        mode: ``"up"`` (increases only), ``"down"`` or ``"both"``.

    After an alarm, the next update starts the test afresh, as river does.

    Examples:
        >>> import random
        >>> from detectors import PageHinkley
        >>> rng = random.Random(12345)
        >>> detector = PageHinkley()
        >>> stream = [rng.gauss(0, 0.1) for _ in range(1000)] + [rng.gauss(2, 0.1) for _ in range(100)]
        >>> for i, x in enumerate(stream):
        ...     detector.update(x)
        ...     if detector.drift_detected:
        ...         print(f"change detected at index {i}")
        ...         break
        change detected at index 1025

    References:
        E. S. Page, "Continuous inspection schemes", Biometrika 41, 1954.
    """

    name = "page_hinkley"

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ) -> None:
        if min_instances < 1:
            raise ValueError("min_instances must be >= 1")
        if threshold <= 0:
            raise ValueError("threshold must be > 0")
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        self.min_instances = min_instances
        self.delta = delta
        self.threshold_ = threshold
        self.alpha = alpha
        self.mode = mode
        super().__init__()

    # ``threshold`` is both a hyperparameter (river's name) and the protocol's property.
    @property
    def threshold(self) -> float:
        return self.threshold_

    def _reset(self) -> None:
        self._count = 0.0
        self._mean = 0.0
        self._sum_increase = 0.0
        self._sum_decrease = 0.0
        self._min_increase = float("inf")
        self._max_decrease = -1.0
        self._statistic = 0.0
        self._restart_pending = False

    @property
    def statistic(self) -> float:
        return self._statistic

    def _update(self, x: float) -> bool:
        if self._restart_pending:
            self._reset()
        self._count += 1.0
        self._mean += (1.0 / self._count) * (x - self._mean)
        dev = x - self._mean
        self._sum_increase = self.alpha * self._sum_increase + dev - self.delta
        self._sum_decrease = self.alpha * self._sum_decrease + dev + self.delta
        self._min_increase = min(self._min_increase, self._sum_increase)
        self._max_decrease = max(self._max_decrease, self._sum_decrease)
        if self._count < self.min_instances:
            return False
        rise = self._sum_increase - self._min_increase
        fall = self._max_decrease - self._sum_decrease
        self._statistic = {"up": rise, "down": fall, "both": max(rise, fall)}[self.mode]
        self._restart_pending = self._statistic > self.threshold_
        return self._restart_pending

    def _get_state(self) -> dict[str, Any]:
        return {
            "count": self._count,
            "mean": self._mean,
            "sum_increase": self._sum_increase,
            "sum_decrease": self._sum_decrease,
            "min_increase": self._min_increase,
            "max_decrease": self._max_decrease,
            "statistic": self._statistic,
            "restart_pending": self._restart_pending,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self._count = float(state["count"])
        self._mean = float(state["mean"])
        self._sum_increase = float(state["sum_increase"])
        self._sum_decrease = float(state["sum_decrease"])
        self._min_increase = float(state["min_increase"])
        self._max_decrease = float(state["max_decrease"])
        self._statistic = float(state["statistic"])
        self._restart_pending = bool(state["restart_pending"])
