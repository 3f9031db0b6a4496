"""MahalanobisDrift on autocorrelated rows: false alarms at the rate alpha promises."""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

from detectors import MahalanobisDrift


def ar1(rng: np.random.Generator, n: int, d: int, rho: float) -> np.ndarray:
    noise = rng.normal(size=(n, d)) * math.sqrt(1 - rho * rho)
    return lfilter([1.0], [1.0, -rho], noise, axis=0)


def test_strongly_autocorrelated_rows_raise_about_alpha_false_alarms_per_window():
    """rho = 0.9: 2,000 windows of 500 rows at alpha = 1e-3 should raise about 2.  Widening by
    the *estimated* rho's AR(1) factor raised 8 here (rho from 1,000 rows is uncertain by 0.014,
    which moves the factor by 15%); its upper bound raises 2."""
    alarms = 0
    for seed in range(10):
        rows = ar1(np.random.default_rng(seed), 101_000, 5, 0.9)
        alarms += len(MahalanobisDrift(alpha=1e-3).update_many(rows))
    assert alarms <= 4


def test_a_real_shift_of_autocorrelated_rows_is_still_seen():
    rng = np.random.default_rng(11)
    rows = ar1(rng, 26_000, 5, 0.9)
    rows[23_000:, 2] += 1.5  # 1.5 sd on one feature, after the (grown) reference
    alarms = MahalanobisDrift(alpha=1e-3).update_many(rows).tolist()
    assert alarms and 23_000 <= alarms[0] < 24_500


def test_the_reference_grows_on_autocorrelated_rows_only():
    """1,000 rows of AR(0.9) features hold about as much as 50 independent ones: the reference
    takes reference_size effective rows (up to MAX_EXTEND times as many), independent rows
    keep reference_size."""
    from detectors.mahalanobis import MAX_EXTEND

    rng = np.random.default_rng(3)
    independent = MahalanobisDrift()
    independent.update_many(rng.normal(size=(1500, 5)))
    assert independent.calibrated and independent._ref_n == 1000
    autocorrelated = MahalanobisDrift()
    autocorrelated.update_many(ar1(rng, 5000, 5, 0.9))
    assert not autocorrelated.calibrated
    target = autocorrelated._reference_target()
    assert 15_000 <= target <= 1000 * MAX_EXTEND
    autocorrelated.update_many(ar1(rng, target - 5000, 5, 0.9))
    assert autocorrelated.calibrated and autocorrelated._ref_n == target
