"""System monitor: a latency quantile (p99 by default) against a service-level objective."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detectors.base import DriftDetector

_GROWTH = 1.05  # histogram buckets: each 5% wider than the last (quantiles within ~2.5%)
_FLOOR_MS = 0.001


class LatencySLO(DriftDetector):
    """Alarm when a window's latency quantile breaks the SLO.

    Latencies (milliseconds, >= 0; negative or non-finite values are rejected) go into a
    log-bucketed histogram per tumbling window of ``window`` values: fixed memory, quantiles
    within about 2.5%.  At the end of each window the ``quantile`` (0.99: p99) is compared with
    ``slo_ms``; ``consecutive`` breached windows in a row raise the alarm, so one slow burst
    does not page anyone.  Statistic: the window's quantile as a multiple of the SLO; threshold
    1.  For gradual creep below the SLO, watch log-latency with :class:`~detectors.CUSUM` (the
    stream workers do both).

    Parameters:
        slo_ms: The objective for the quantile, in milliseconds.
        quantile: Which quantile the SLO is about.
        window: Latencies per window.
        consecutive: Breached windows in a row that make an alarm.

    Examples:
        >>> import random
        >>> from detectors import LatencySLO
        >>> rng = random.Random(5)
        >>> fast = [rng.lognormvariate(3.0, 0.4) for _ in range(5000)]  # p99 ~ 50 ms
        >>> slow = [rng.lognormvariate(3.6, 0.4) for _ in range(2000)]  # p99 ~ 90 ms
        >>> detector = LatencySLO(slo_ms=75)
        >>> detector.update_many(fast + slow).tolist(), round(detector.statistic, 2)
        ([5499, 5999, 6499, 6999], 1.13)
    """

    name = "latency_slo"
    input_kind = "latency"
    _state_fields = ("_buckets", "_in_window", "_breaches", "_statistic", "_last_quantile_ms")

    def __init__(
        self,
        slo_ms: float = 250.0,
        quantile: float = 0.99,
        window: int = 500,
        consecutive: int = 1,
    ) -> None:
        if slo_ms <= 0 or not 0 < quantile < 1 or window < 10 or consecutive < 1:
            raise ValueError("need slo_ms > 0, 0 < quantile < 1, window >= 10, consecutive >= 1")
        self.slo_ms = slo_ms
        self.quantile = quantile
        self.window = window
        self.consecutive = consecutive
        super().__init__()

    @property
    def statistic(self) -> float:
        return self._statistic

    @property
    def threshold(self) -> float:
        return 1.0

    @property
    def last_quantile_ms(self) -> float:
        """The quantile of the last complete window, in milliseconds."""
        return self._last_quantile_ms

    def _accept(self, x: Any) -> float | None:
        value = super()._accept(x)
        return value if value is not None and value >= 0 else None

    def _reset(self) -> None:
        self._buckets: dict[str, int] = {}  # str keys: JSON object keys are strings
        self._in_window = 0
        self._breaches = 0
        self._statistic = 0.0
        self._last_quantile_ms = 0.0

    def _update(self, x: float) -> bool:
        key = str(math.floor(math.log(max(x, _FLOOR_MS) / _FLOOR_MS, _GROWTH)))
        self._buckets[key] = self._buckets.get(key, 0) + 1
        self._in_window += 1
        return self._in_window >= self.window and self._close_window()

    def _close_window(self) -> bool:
        """Test the full window against the SLO and start the next; True on an alarm."""
        self._last_quantile_ms = self._window_quantile()
        self._statistic = self._last_quantile_ms / self.slo_ms
        self._buckets, self._in_window = {}, 0
        self._breaches = self._breaches + 1 if self._statistic > 1.0 else 0
        if self._breaches >= self.consecutive:
            self._breaches = 0
            return True
        return False

    def update_until_alarm(self, values: Any) -> int:
        """One tight loop per window instead of one ``update`` call per value."""
        latencies = self._batch(values)
        if not (np.isfinite(latencies).all() and (latencies >= 0).all()):
            return super().update_until_alarm(latencies)  # values to reject: one by one
        n, i = len(latencies), 0
        values_ = latencies.tolist()
        log, floor = math.log, math.floor
        while i < n:
            block = values_[i : i + self.window - self._in_window]
            i += len(block)
            buckets = self._buckets
            for x in block:
                key = str(floor(log(max(x, _FLOOR_MS) / _FLOOR_MS, _GROWTH)))
                buckets[key] = buckets.get(key, 0) + 1
            self.n_seen += len(block)
            self._in_window += len(block)
            self._drift_detected = False
            if self._in_window >= self.window and self._close_window():
                self._drift_detected = True
                self.n_detections += 1
                return i
        return n

    def _window_quantile(self) -> float:
        rank = self.quantile * self._in_window
        seen = 0
        for key in sorted(self._buckets, key=int):
            seen += self._buckets[key]
            if seen >= rank:
                return _FLOOR_MS * _GROWTH ** (int(key) + 0.5)  # bucket midpoint (log scale)
        return 0.0

    @classmethod
    def _unit_test_params(cls) -> dict[str, Any]:
        return {"slo_ms": 40.0, "quantile": 0.9, "window": 100, "consecutive": 2}
