"""Small statistical helpers shared by the detectors (pure numpy, no scipy needed)."""

from __future__ import annotations

import math

import numpy as np


def kolmogorov_pvalue(statistic: float, n1: float, n2: float) -> float:
    """Asymptotic p-value of a two-sample KS statistic (with Stephens' small-sample correction).

    >>> round(kolmogorov_pvalue(0.1, 1000, 500), 3)
    0.002
    """
    en = math.sqrt(n1 * n2 / (n1 + n2))
    lam = (en + 0.12 + 0.11 / en) * statistic
    if lam < 0.2:
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = math.exp(-2 * k * k * lam * lam)
        if term == 0.0:  # every later term underflows too: adding them changes nothing
            break
        total += term if k % 2 else -term
    return min(max(2 * total, 0.0), 1.0)


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (reject where adjusted <= the FDR level).

    >>> benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.5])).round(3).tolist()
    [0.04, 0.053, 0.053, 0.5]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def psi(reference: np.ndarray, current: np.ndarray, floor: float = 1e-4) -> float:
    """Population stability index between two vectors of bin proportions.

    >>> round(psi(np.array([0.5, 0.5]), np.array([0.9, 0.1])), 3)
    0.879
    """
    r = np.maximum(np.asarray(reference, dtype=np.float64), floor)
    c = np.maximum(np.asarray(current, dtype=np.float64), floor)
    return float(((c - r) * np.log(c / r)).sum())


def log10_pvalue_score(p: float) -> float:
    """``-log10(p)``, capped, so that larger means stronger evidence of drift."""
    return min(-math.log10(max(p, 1e-300)), 300.0)


def rho_upper(rho, n: int, cap: float = 0.95):
    """A lag-1 autocorrelation estimate from ``n`` values, raised to its upper bound (two
    standard errors, ``sqrt((1 - rho^2) / n)`` each) where it stands out of its noise
    (``rho > 2 / sqrt(n)``); left alone where it does not.  Scalars or arrays.

    The AR(1) variance factor ``(1 + rho) / (1 - rho)`` moves 2% per 0.01 of rho near 0.9,
    and rho from 1,000 values is uncertain by 0.014: a point estimate reads autocorrelated
    noise as drift about as often as it errs low.

    >>> round(float(rho_upper(0.9, 1000)), 3), float(rho_upper(0.03, 1000))
    (0.928, 0.03)
    """
    n = max(n, 2)
    rho = np.asarray(rho, dtype=np.float64)
    raised = np.minimum(rho + 2 * np.sqrt(np.maximum(1 - rho**2, 0.0) / n), cap)
    out = np.where(rho > 2 / math.sqrt(n), raised, rho)
    return float(out) if out.ndim == 0 else out


def lag1_inflation(rows: np.ndarray, cap: float = 0.95) -> np.ndarray:
    """Per column, ``(1 + rho) / (1 - rho)`` for its lag-1 autocorrelation ``rho`` (clamped to
    ``[0, cap]``): how much an AR(1) process inflates the variance of a mean.

    >>> rng = np.random.default_rng(0)
    >>> iid = rng.normal(0, 1, (5000, 1))
    >>> ar = np.zeros((5000, 1))
    >>> for t in range(1, 5000):
    ...     ar[t] = 0.5 * ar[t - 1] + iid[t]
    >>> lag1_inflation(np.hstack([iid, ar])).round(1).tolist()
    [1.0, 3.0]
    """
    x = np.asarray(rows, dtype=np.float64)
    x = x - x.mean(axis=0)
    denom = (x * x).sum(axis=0)
    rho = np.divide((x[1:] * x[:-1]).sum(axis=0), denom, out=np.zeros(x.shape[1]), where=denom > 0)
    rho = np.clip(rho, 0.0, cap)
    return (1 + rho) / (1 - rho)


def welford_add(
    n: int, mean: np.ndarray, scatter: np.ndarray, row: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Running mean and scatter matrix (Welford) after adding ``row`` as the ``n``-th row.

    >>> rows = np.array([[1.0, 2.0], [3.0, 0.0], [5.0, 4.0]])
    >>> mean, scatter = np.zeros(0), np.zeros(0)
    >>> for n, row in enumerate(rows, start=1):
    ...     mean, scatter = welford_add(n, mean, scatter, row)
    >>> np.allclose(scatter / 2, np.cov(rows.T)), mean.tolist()
    (True, [3.0, 2.0])
    """
    if n == 1:
        mean, scatter = np.zeros(len(row)), np.zeros((len(row), len(row)))
    delta = row - mean
    mean = mean + delta / n
    return mean, scatter + np.outer(delta, row - mean)


def welford_merge(
    n: int, mean: np.ndarray, scatter: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`welford_add` for a block of ``rows`` at once: the running mean and scatter
    matrix of ``n`` rows merged with the block's own (Chan, Golub and LeVeque's pairwise
    update, as stable as adding row by row and equal to it up to rounding).

    >>> rows = np.random.default_rng(0).normal(size=(50, 3))
    >>> mean, scatter = welford_merge(0, np.zeros(0), np.zeros(0), rows[:20])
    >>> mean, scatter = welford_merge(20, mean, scatter, rows[20:])
    >>> np.allclose(scatter / 49, np.cov(rows.T)), np.allclose(mean, rows.mean(axis=0))
    (True, True)
    """
    rows = np.asarray(rows, dtype=np.float64)
    k = len(rows)
    if k == 0:
        return mean, scatter
    block_mean = rows.mean(axis=0)
    centred = rows - block_mean
    block_scatter = centred.T @ centred
    if n == 0:
        return block_mean, block_scatter
    total = n + k
    delta = block_mean - mean
    return (
        mean + delta * (k / total),
        scatter + block_scatter + np.outer(delta, delta) * (n * k / total),
    )
