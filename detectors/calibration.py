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
    return float(adjustment_coefficients(values[None, :], weights[None, :])[0])


def adjustment_coefficients(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """:func:`adjustment_coefficient` of each row of ``values``/``weights`` at once.

    ``log E[exp(theta v)]`` is convex, zero at 0 and falling there (negative mean), so Newton's
    method started right of the root (found by doubling) falls monotonically onto it: about ten
    steps to float precision, where bisection took eighty, and all rows in the same steps.
    """
    weights = weights / weights.sum(axis=1, keepdims=True)
    if (np.einsum("ij,ij->i", weights, values) >= 0).any():
        raise ValueError("increments must drift downwards (negative mean) under the reference")
    theta = np.full(len(values), np.inf)
    live = (values > 0).any(axis=1)
    if not live.any():
        return theta
    v, w = values[live], weights[live]

    def log_mgf(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = t[:, None] * v
        top = x.max(axis=1)
        e = w * np.exp(x - top[:, None])
        total = e.sum(axis=1)
        return top + np.log(total), np.einsum("ij,ij->i", e, v) / total

    t = np.ones(len(v))
    while (low := log_mgf(t)[0] < 0).any():
        t[low] *= 2
    for _ in range(200):
        f, slope = log_mgf(t)
        step = f / slope
        t = np.maximum(t - step, np.nextafter(0, 1))
        if (np.abs(step) <= 1e-14 * t).all():
            break
    theta[live] = t
    return theta


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
    return thresholds_for(target_run_length, [(values, weights)])[0]


def thresholds_for(
    target_run_length: float, arms: list[tuple[np.ndarray, np.ndarray]]
) -> list[float]:
    """:func:`threshold_for` of several CUSUMs' increments (``(values, weights)`` each); arms of
    the same length share their adjustment-coefficient steps."""
    thetas: list[float] = [0.0] * len(arms)
    by_length: dict[int, list[int]] = {}
    for i, (values, _) in enumerate(arms):
        by_length.setdefault(len(values), []).append(i)
    for rows in by_length.values():
        values = np.stack([arms[i][0] for i in rows])
        weights = np.stack([arms[i][1] for i in rows])
        for i, theta in zip(rows, adjustment_coefficients(values, weights), strict=True):
            thetas[i] = float(theta)
    return [_threshold(target_run_length, v, w, t) for (v, w), t in zip(arms, thetas, strict=True)]


def _threshold(target: float, values: np.ndarray, weights: np.ndarray, theta: float) -> float:
    if math.isinf(theta):
        return 0.0
    weights = weights / weights.sum()
    mu = -float(weights @ values)
    sd = math.sqrt(float(weights @ (values + mu) ** 2))
    lo, hi = 0.0, 1.0
    while run_length(hi, theta, mu, sd) < target:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if run_length(mid, theta, mu, sd) < target else (lo, mid)
    return hi
