"""KSWIN: a Kolmogorov-Smirnov test between the newest values and the rest of a window."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from detectors.base import DriftDetector
from detectors.state import pack_floats, unpack_floats


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between empirical CDFs.

    >>> ks_statistic(np.array([1.0, 2.0, 3.0]), np.array([10.0, 11.0]))
    1.0
    """
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    gaps = np.searchsorted(a, grid, side="right") / len(a) - np.searchsorted(
        b, grid, side="right"
    ) / len(b)
    return float(np.abs(gaps).max())


def ks_critical_value(alpha: float, n1: int, n2: int) -> float:
    """Statistic above which two samples differ at level ``alpha`` (asymptotic Kolmogorov)."""
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n1 + n2) / (n1 * n2))


class KSWIN(DriftDetector):
    """Kolmogorov-Smirnov windowing (Raab et al.), deterministic and with a fixed critical value.

    Keeps the last ``window_size`` values and, once the window is full, compares the newest
    ``stat_size`` of them with all the older ones using the two-sample KS statistic.  An alarm
    needs the statistic above the critical value for level ``alpha``.  The test runs at every
    value on overlapping windows, so ``alpha`` is far smaller than a one-off test's would be:
    the default keeps false alarms to a few per 100k i.i.d. values (``bench/detection.py``).
    Unlike river's KSWIN, the older part is not subsampled at random, so results need no seed
    and a checkpoint needs no random-generator state.  After an alarm the window keeps only the
    newest ``stat_size`` values.

    KSWIN compares whole distributions, so it sees changes of shape that leave mean and
    variance alone, but its small windows make it blind to small shifts.

    Parameters:
        alpha: Level of each KS test.
        window_size: Values kept.
        stat_size: Newest values compared with the rest.

    Examples:
        >>> import random
        >>> from detectors import KSWIN
        >>> rng = random.Random(12345)
        >>> detector = KSWIN()
        >>> stream = [rng.gauss(0, 1) for _ in range(1000)] + [rng.gauss(3, 1) for _ in range(200)]
        >>> for i, x in enumerate(stream):
        ...     detector.update(x)
        ...     if detector.drift_detected:
        ...         print(f"change detected at index {i}")
        ...         break
        change detected at index 1018

    References:
        C. Raab, M. Heusinger, F.-M. Schleif, "Reactive soft prototype computing for concept
        drift streams", Neurocomputing 416, 2020.
    """

    name = "kswin"

    def __init__(self, alpha: float = 1e-5, window_size: int = 100, stat_size: int = 30) -> None:
        if not 0 < alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        if not 0 < stat_size < window_size:
            raise ValueError("need 0 < stat_size < window_size")
        self.alpha = alpha
        self.window_size = window_size
        self.stat_size = stat_size
        self._critical = ks_critical_value(alpha, window_size - stat_size, stat_size)
        super().__init__()

    @property
    def statistic(self) -> float:
        return self._statistic

    @property
    def threshold(self) -> float:
        return self._critical

    def _reset(self) -> None:
        self._window: deque[float] = deque(maxlen=self.window_size)
        self._statistic = 0.0

    def _update(self, x: float) -> bool:
        self._window.append(x)
        if len(self._window) < self.window_size:
            return False
        values = np.fromiter(self._window, dtype=np.float64, count=self.window_size)
        split = self.window_size - self.stat_size
        self._statistic = ks_statistic(values[:split], values[split:])
        if self._statistic <= self._critical:
            return False
        self._window = deque(values[split:].tolist(), maxlen=self.window_size)
        return True

    def _get_state(self) -> dict[str, Any]:
        return {"window": pack_floats(self._window), "statistic": self._statistic}

    def _set_state(self, state: dict[str, Any]) -> None:
        self._window = deque(unpack_floats(state["window"]), maxlen=self.window_size)
        self._statistic = float(state["statistic"])
