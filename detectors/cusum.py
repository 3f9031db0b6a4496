"""Two-sided CUSUM with a threshold calibrated from a reference window."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detectors.base import DriftDetector


def siegmund_arl(h: float, k: float) -> float:
    """Average run length of a one-sided CUSUM on i.i.d. N(0,1) (Siegmund's approximation)."""
    b = h + 1.166
    return (math.exp(2 * k * b) - 2 * k * b - 1) / (2 * k * k)


def threshold_for_arl(target_arl: float, k: float) -> float:
    """Smallest ``h`` whose two-sided ARL (half the one-sided one) reaches ``target_arl``."""
    lo, hi = 0.0, 1.0
    while siegmund_arl(hi, k) / 2 < target_arl:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if siegmund_arl(mid, k) / 2 < target_arl else (lo, mid)
    return hi


class CUSUM(DriftDetector):
    """Two-sided CUSUM in robust, autocorrelation-aware standard units.

    The first ``reference_size`` values are the reference: their median is the in-control
    level and ``1.4826 * MAD`` the scale (robust to heavy tails; mean and standard deviation for
    discrete data whose MAD is 0).  Standardised values are clipped to ``[-clip, clip]`` so a
    single outlier cannot raise an alarm, and the scale is corrected so that the clipped
    reference has unit variance.  The lag-1 autocorrelation ``rho`` of the reference inflates the
    scale by ``sqrt((1 + rho) / (1 - rho))``, the long-run standard deviation of an AR(1) process,
    so autocorrelated noise does not read as drift.  The threshold ``h`` is set from ``target_arl`` (values between false alarms) with
    Siegmund's approximation, unless given.  After an alarm the detector takes a new reference
    from the values that follow: the new regime becomes the baseline.

    Parameters:
        k: Reference value (allowance), in standard units: half the shift to detect fastest.
        target_arl: Values between false alarms to aim for when ``threshold`` is None.
        threshold: A fixed ``h`` in standard units, overriding the calibration.
        reference_size: Values used to learn level, scale and autocorrelation.
        clip: Bound on standardised values.

    Examples:
        >>> import random
        >>> from detectors import CUSUM
        >>> rng = random.Random(12345)
        >>> detector = CUSUM()
        >>> stream = [rng.gauss(0, 1) for _ in range(3000)] + [rng.gauss(1, 1) for _ in range(500)]
        >>> for i, x in enumerate(stream):
        ...     detector.update(x)
        ...     if detector.drift_detected:
        ...         print(f"change detected at index {i}")
        ...         break
        change detected at index 3017
    """

    name = "cusum"

    def __init__(
        self,
        k: float = 0.5,
        target_arl: float = 200_000.0,
        threshold: float | None = None,
        reference_size: int = 1000,
        clip: float = 3.0,
    ) -> None:
        if k <= 0 or target_arl <= 1 or reference_size < 30 or clip <= k:
            raise ValueError("need k > 0, target_arl > 1, reference_size >= 30, clip > k")
        if threshold is not None and threshold <= 0:
            raise ValueError("threshold must be > 0")
        self.k = k
        self.target_arl = target_arl
        self.threshold_ = threshold
        self.reference_size = reference_size
        self.clip = clip
        self._h = threshold if threshold is not None else threshold_for_arl(target_arl, k)
        super().__init__()

    @property
    def threshold(self) -> float:
        return self._h

    @property
    def statistic(self) -> float:
        return max(self._up, self._down)

    def _reset(self) -> None:
        self._reference: list[float] = []
        self._level = 0.0
        self._scale = 0.0
        self._up = 0.0
        self._down = 0.0
        self._restart_pending = False

    def _calibrate(self) -> None:
        ref = np.asarray(self._reference)
        self._reference = []
        level = float(np.median(ref))
        scale = 1.4826 * float(np.median(np.abs(ref - level)))
        if scale == 0.0:  # discrete data (e.g. a 0/1 error stream): the median says nothing
            level, scale = float(ref.mean()), float(ref.std())
        if scale == 0.0:  # a constant reference: any change at all is drift
            self._level, self._scale = level, 1e-12
            return
        # The detector sees clipped values; scale so that *they* have unit variance
        # (heavy tails otherwise inflate the clipped increments), then widen by the AR(1)
        # long-run factor so autocorrelated noise does not read as a shift.
        z = np.clip((ref - level) / scale, -self.clip, self.clip)
        scale *= max(float(z.std()), 1e-6)
        centred = z - z.mean()
        denom = float(centred @ centred)
        rho = float(centred[1:] @ centred[:-1]) / denom if denom > 0 else 0.0
        rho = min(max(rho, 0.0), 0.95)
        self._level = level
        self._scale = scale * math.sqrt((1 + rho) / (1 - rho))

    def _update(self, x: float) -> bool:
        if self._restart_pending:  # the values after an alarm are the new reference
            self._reset()
        if self._scale == 0.0:
            self._reference.append(x)
            if len(self._reference) == self.reference_size:
                self._calibrate()
            return False
        z = min(max((x - self._level) / self._scale, -self.clip), self.clip)
        self._up = max(0.0, self._up + z - self.k)
        self._down = max(0.0, self._down - z - self.k)
        self._restart_pending = self._up > self._h or self._down > self._h
        return self._restart_pending

    def _get_state(self) -> dict[str, Any]:
        return {
            "reference": self._reference,
            "level": self._level,
            "scale": self._scale,
            "up": self._up,
            "down": self._down,
            "restart_pending": self._restart_pending,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self._reference = [float(v) for v in state["reference"]]
        self._level = float(state["level"])
        self._scale = float(state["scale"])
        self._up = float(state["up"])
        self._down = float(state["down"])
        self._restart_pending = bool(state["restart_pending"])
