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
from collections.abc import Sequence

import numpy as np

OVERSHOOT = 1.166
#: Nodes (in standard errors) and probabilities of a standard normal: Gauss-Hermite, 9 points
ERROR_NODES, ERROR_WEIGHTS = np.polynomial.hermite_e.hermegauss(9)
ERROR_WEIGHTS = ERROR_WEIGHTS / ERROR_WEIGHTS.sum()


def adjustment_coefficient(values: np.ndarray, weights: np.ndarray) -> float:
    """Root ``theta > 0`` of ``sum(w * exp(theta * v)) = 1`` (``inf`` if no ``v`` is positive).

    >>> v, w = np.array([-1.5, 0.5]), np.array([0.5, 0.5])
    >>> theta = adjustment_coefficient(v, w)
    >>> round(theta, 4), round(float(w @ np.exp(theta * v)), 9)
    (1.2188, 1.0)
    """
    return float(adjustment_coefficients(values[None, :], weights[None, :])[0])


def adjustment_coefficients(
    values: np.ndarray, weights: np.ndarray, tolerance: float = 1e-14
) -> np.ndarray:
    """:func:`adjustment_coefficient` of each row of ``values``/``weights`` at once.

    ``log E[exp(theta v)]`` is convex, zero at 0 and falling there (negative mean), so Newton's
    method started right of the root (found by doubling) falls monotonically onto it: about ten
    steps to float precision, where bisection took eighty.  All rows take their steps together,
    and each row stops at its own last step, so a row's root does not depend on the rows beside
    it (detectors calibrated together get the thresholds each would get alone).
    """
    weights = weights / weights.sum(axis=1, keepdims=True)
    if (np.einsum("ij,ij->i", weights, values) >= 0).any():
        raise ValueError("increments must drift downwards (negative mean) under the reference")
    theta = np.full(len(values), np.inf)
    live = (values > 0).any(axis=1)
    if not live.any():
        return theta
    v, w = values[live], weights[live]
    t = np.ones(len(v))
    while (low := _log_mgf(t, v, w)[0] < 0).any():
        t[low] *= 2
    going = np.arange(len(v))  # rows still stepping
    for _ in range(200):
        f, slope = _log_mgf(t[going], v[going], w[going])
        step = f / slope
        t[going] = np.maximum(t[going] - step, np.nextafter(0, 1))
        going = going[np.abs(step) > tolerance * t[going]]
        if not len(going):
            break
    theta[live] = t
    return theta


def _log_mgf(t: np.ndarray, v: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log sum(w * exp(t v))`` per row, and its derivative in ``t``."""
    x = t[:, None] * v
    top = x.max(axis=1)
    e = w * np.exp(x - top[:, None])
    total = e.sum(axis=1)
    return top + np.log(total), np.einsum("ij,ij->i", e, v) / total


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
    for rows, values, weights in _stacked_by_length(arms):
        for i, theta in zip(rows, adjustment_coefficients(values, weights), strict=True):
            thetas[i] = float(theta)
    return [_threshold(target_run_length, v, w, t) for (v, w), t in zip(arms, thetas, strict=True)]


def _stacked_by_length(
    pairs: list[tuple[np.ndarray, np.ndarray]],
) -> list[tuple[list[int], np.ndarray, np.ndarray]]:
    """``(values, weights)`` pairs grouped by length, each group stacked into two arrays (a row
    per pair), with the pairs' indices: what the adjustment coefficients are computed on."""
    by_length: dict[int, list[int]] = {}
    for i, (values, _) in enumerate(pairs):
        by_length.setdefault(len(values), []).append(i)
    return [
        (rows, np.stack([pairs[i][0] for i in rows]), np.stack([pairs[i][1] for i in rows]))
        for rows in by_length.values()
    ]


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


def thresholds_averaged(
    target_run_length: float | Sequence[float], arms: list[list[tuple[np.ndarray, np.ndarray]]]
) -> list[float]:
    """Thresholds for a reference that is itself an estimate (``target_run_length``: one for
    all arms, or one per arm).  Each arm's threshold is its own: the same whatever arms are
    calibrated beside it, so many detectors' arms can go in one call.

    ``arms[j][q]`` is arm ``j``'s increments (``(values, weights)``) if the reference were off
    by ``ERROR_NODES[q]`` standard errors toward that arm; the middle node (0) is the reference
    as estimated; an arm given one pair has no error to average over (the same pair at every
    node, computed once).  Each threshold is set so that the false-alarm rate *averaged* over that error
    (weights ``ERROR_WEIGHTS``) meets the target: :func:`thresholds_for` meets it only when the
    reference is exact, and a CUSUM's rate is exponential in its threshold times its drift, so
    the references that came out a little off toward an arm page far more often than the exact
    ones page less.  For a small arm at a long target (0.25 sd, one false alarm per 1e8 values,
    2,000 reference values) the averaged rate at the exact threshold is some 11 times the
    target.

    >>> grid = np.linspace(-8, 8, 801)
    >>> def arm(off):  # N(-0.125, 1) increments, the reference's mean off by ``off``
    ...     return grid - 0.125 + off, np.exp(-grid**2 / 2)
    >>> exact = thresholds_for(1e8, [arm(0.0)])[0]
    >>> averaged = thresholds_averaged(1e8, [[arm(x / 2000**0.5) for x in ERROR_NODES]])[0]
    >>> round(exact, 1), round(averaged, 1)
    (58.7, 75.3)
    """
    if not arms:
        return []
    flat = [variant for variants in arms for variant in variants]
    # each arm's node -> its pair in ``flat`` (an arm of one pair: that pair at every node)
    nodes, index, start = len(ERROR_NODES), [], 0
    for variants in arms:
        if len(variants) not in (1, nodes):
            raise ValueError(f"each arm needs 1 or {nodes} (values, weights) pairs")
        index.append(range(start, start + nodes) if len(variants) > 1 else [start] * nodes)
        start += len(variants)
    thetas, mus, sds = np.zeros(len(flat)), np.zeros(len(flat)), np.zeros(len(flat))
    for rows, values, weights in _stacked_by_length(flat):
        weights = weights / weights.sum(axis=1, keepdims=True)
        mu = -np.einsum("ij,ij->i", weights, values)
        sds[rows] = np.sqrt(np.einsum("ij,ij->i", weights, (values + mu[:, None]) ** 2))
        mus[rows] = mu
        settled = mu > 0
        if settled.any():
            picked = [i for i, ok in zip(rows, settled, strict=True) if ok]
            thetas[picked] = adjustment_coefficients(values[settled], weights[settled], 1e-9)
    at = np.array(index)
    theta, mu, sd = thetas[at], mus[at], sds[at]
    target = np.broadcast_to(np.asarray(target_run_length, dtype=np.float64), (len(arms),))
    log_target = -np.log(target)
    # start where the exact reference's run length is about the target (exp(theta b) / (theta
    # mu) = target), then Newton on the log of the averaged rate (convex and falling in h: it
    # settles from either side)
    middle = len(ERROR_NODES) // 2
    t0, m0, s0 = theta[:, middle], mu[:, middle], sd[:, middle]
    usable = np.isfinite(t0) & (m0 > 0)
    t0, m0 = np.where(usable, t0, 1.0), np.where(usable, m0, 1.0)
    h = np.where(
        usable,
        np.maximum(np.log(target * t0 * m0) / t0 - OVERSHOOT * s0, 0.0),
        0.0,
    )
    going = np.arange(len(arms))  # arms still stepping (each stops at its own last step)
    for _ in range(50):
        rate, slope = _rates(h[going], theta[going], mu[going], sd[going])
        mean_rate = (rate * ERROR_WEIGHTS).sum(axis=1)
        mean_slope = (slope * ERROR_WEIGHTS).sum(axis=1)
        live = (mean_rate > 0) & (mean_slope < 0)
        gap = np.where(live, np.log(np.where(live, mean_rate, 1.0)) - log_target[going], 0.0)
        unsettled = np.abs(gap) > 1e-9
        going, gap = going[unsettled], gap[unsettled]
        if not len(going):
            break
        step = gap * mean_rate[unsettled] / np.where(live[unsettled], mean_slope[unsettled], -1.0)
        h[going] = np.maximum(h[going] - step, 0.0)
    return [float(v) for v in h]


def _rates(
    h: np.ndarray, theta: np.ndarray, mu: np.ndarray, sd: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """False alarms per value (``1 / run_length``) and their derivative in ``h``, per arm and
    node; a node whose increments do not drift down is given a driftless walk's ``sd^2/b^2``,
    one that can never rise (``theta`` infinite) none."""
    b = np.maximum(h[:, None] + OVERSHOOT * sd, 1e-12)
    finite = np.isfinite(theta) & (mu > 0)
    t = np.where(finite, theta, 1.0)
    tb = np.minimum(t * b, 700.0)
    denominator = np.expm1(tb) - tb
    rate = np.where(finite, t * np.where(mu > 0, mu, 1.0) / denominator, 0.0)
    slope = np.where(finite, -rate * t * np.expm1(tb) / denominator, 0.0)
    flat = (mu <= 0) & (sd > 0)  # (a constant increment that cannot rise never alarms)
    rate = np.where(flat, sd**2 / b**2, rate)
    slope = np.where(flat, -2 * sd**2 / b**3, slope)
    return rate, slope
