"""Thresholds from a target false-alarm rate: the arithmetic behind calibrated detectors.

A one-sided CUSUM ``S = max(0, S + v)`` on increments ``v`` with negative mean ``-mu`` raises a
false alarm when ``S`` crosses ``h``.  Its average run length (values between false alarms) is
approximately

    ARL(h) = (exp(theta * b) - theta * b - 1) / (theta * mu),   b = h + 1.166 * sd(v),

where ``theta > 0`` is the root of ``E[exp(theta * v)] = 1`` (Lundberg's adjustment
coefficient) and ``1.166 * sd(v)`` Siegmund's correction for the overshoot.  For Gaussian
increments ``theta = 2 * mu / var(v)`` and this is Siegmund's formula; computing ``theta`` from
the *empirical* distribution of the reference instead makes the threshold follow the stream's
own shape (skewed, clipped heavy tails, two-point 0/1 errors) rather than a Gaussian guess.
"""

from __future__ import annotations

import math

import numpy as np

OVERSHOOT = 1.166


def adjustment_coefficient(values: np.ndarray, weights: np.ndarray) -> float:
    """Root ``theta > 0`` of ``sum(w * exp(theta * v)) = 1`` (``inf`` if no ``v`` is positive).

    >>> v, w = np.array([-1.5, 0.5]), np.array([0.5, 0.5])
    >>> theta = adjustment_coefficient(v, w)
    >>> round(theta, 4), round(float(w @ np.exp(theta * v)), 9)
    (1.2188, 1.0)
    """
    weights = weights / weights.sum()
    if not (values > 0).any():
        return math.inf
    if float(weights @ values) >= 0:
        raise ValueError("increments must drift downwards (negative mean) under the reference")

    def log_mgf(theta: float) -> float:
        top = float(np.max(theta * values))
        return top + math.log(float(weights @ np.exp(theta * values - top)))

    hi = 1.0
    while log_mgf(hi) < 0:
        hi *= 2
    lo = 0.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if log_mgf(mid) < 0 else (lo, mid)
    return hi


def run_length(h: float, theta: float, mu: float, sd: float) -> float:
    """Approximate values between false alarms of a one-sided CUSUM with threshold ``h``."""
    tb = theta * (h + OVERSHOOT * sd)
    return (math.expm1(tb) - tb) / (theta * mu)


def threshold_for(target_run_length: float, values: np.ndarray, weights: np.ndarray) -> float:
    """Smallest ``h`` whose approximate false-alarm run length reaches ``target_run_length``.

    ``values``/``weights`` describe the distribution of the CUSUM's increments under the
    reference.  Increments that can never be positive give ``h = 0``: any positive increment
    is then a departure from the reference.

    Gaussian increments N(-0.5, 1) reproduce Siegmund's classic threshold for k = 0.5:

    >>> grid = np.linspace(-8, 8, 4001)
    >>> h = threshold_for(10_000, grid - 0.5, np.exp(-grid**2 / 2))
    >>> round(h, 2)
    7.35
    """
    weights = weights / weights.sum()
    theta = adjustment_coefficient(values, weights)
    if math.isinf(theta):
        return 0.0
    mu = -float(weights @ values)
    sd = math.sqrt(float(weights @ (values + mu) ** 2))
    lo, hi = 0.0, 1.0
    while run_length(hi, theta, mu, sd) < target_run_length:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if run_length(mid, theta, mu, sd) < target_run_length else (lo, mid)
    return hi
