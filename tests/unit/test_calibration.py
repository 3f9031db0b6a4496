"""The calibrated CUSUM keeps the false-alarm rate it is asked for, whatever the stream's shape.

A low target (one false alarm per 2,000 values) makes the rate measurable on short streams;
``bench/detection.py`` checks the default target (500k) on 100k-value streams.
"""

from __future__ import annotations

import numpy as np
import pytest

from detectors import CUSUM
from detectors.calibration import threshold_for


def _ar1(rng: np.random.Generator, n: int, phi: float = 0.5) -> np.ndarray:
    noise = rng.normal(0, 1, n)
    out = np.empty(n)
    prev = 0.0
    for i, e in enumerate(noise):
        prev = phi * prev + e
        out[i] = prev
    return out


STREAMS = {
    "normal": lambda r, n: r.normal(5, 3, n),
    "student-t(3)": lambda r, n: r.standard_t(3, n),
    "skewed (lognormal)": lambda r, n: r.lognormal(0, 0.8, n),
    "ar(1)": _ar1,
    "bernoulli(0.1)": lambda r, n: r.binomial(1, 0.1, n).astype(float),
}


@pytest.mark.parametrize("name", STREAMS)
def test_false_alarm_rate_is_near_the_target(name):
    target, n = 2_000.0, 400_000
    rng = np.random.default_rng(11)
    alarms = CUSUM(target_arl=target).update_many(STREAMS[name](rng, n))
    # Each alarm starts a new 2,000-value reference, during which no alarm can be raised.
    watched = n - 2_000 * (len(alarms) + 1)
    observed = watched / max(len(alarms), 1)
    assert target / 2.5 <= observed <= target * 2.5, (
        f"{name}: {len(alarms)} alarms, one per {observed:.0f} values (target {target:.0f})"
    )


def test_gaussian_threshold_matches_the_textbook_value():
    # Siegmund's approximation for k = 0.5 and h = 4 gives an ARL of about 336 values.
    grid = np.linspace(-8, 8, 4001)
    h = threshold_for(336.0, grid - 0.5, np.exp(-(grid**2) / 2))
    assert h == pytest.approx(4.0, abs=0.05)
