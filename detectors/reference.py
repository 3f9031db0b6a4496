"""A fixed-size summary of a detector's reference window (what "normal" looks like).

Calibrated detectors learn level, scale, autocorrelation and the shape of the distribution from
the first values they see.  Storing those values would make a checkpoint grow with the
reference, so :class:`ReferenceSketch` keeps only:

- a short *pilot* (the first ``PILOT_SIZE`` values) for a robust first guess of level and scale
  (median and MAD), which fixes a frame ``u = clip((x - level0) / scale0, -clip, clip)``;
- running sums of ``u``, ``u**2`` and ``u[t] * u[t-1]`` (mean, variance, lag-1 autocorrelation);
- a histogram of ``u`` (``BINS`` interior bins plus the two clipped ends): the empirical
  distribution that thresholds are calibrated on.

A pilot of only 0s and 1s marks a *binary* stream (errors, flags); it keeps counts instead.  If a
value other than 0 or 1 arrives before the reference is complete, the sketch starts again from
that value, as a numeric stream.
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

PILOT_SIZE = 32
BINS = 30


BLOCK = 50  # values per block of a 0/1 reference (their counts measure clustering)


@functools.lru_cache(maxsize=64)
def _edges(clip: float) -> tuple[float, ...]:
    """The histogram's bin edges for ``clip``: one tuple for every sketch with that clip (a
    list per sketch was 27 KB of a young model with 20 features)."""
    return tuple(np.linspace(-clip, clip, BINS + 1).tolist())


def _pilot_widening(pilot: np.ndarray) -> float:
    """How much wider than the pilot's own spread to open the frame.

    A few dozen consecutive values of an autocorrelated stream cover a small part of its range
    (32 values of an AR(1) with rho = 0.9 spread about 0.6 of its standard deviation, around a
    centre that may be a whole deviation off), so a frame clipped at ``clip`` pilot scales would
    cut the stream's own tails and read its spread too narrow: the spread CUSUM then pages on
    normal traffic.  When the pilot's lag-1 autocorrelation ``r`` stands out of its noise
    (``r > 2 / sqrt(len)``), the frame opens by ``sqrt((1 + r) / (1 - r))``, at most 2.5x.
    Independent values keep their pilot scale (the frame only fixes units and clipping; the
    reference's mean and spread are measured afterwards, in it).

    >>> round(_pilot_widening(np.array([0.0, 1.0] * 16)), 3)  # alternating: no widening
    1.0
    >>> round(_pilot_widening(np.linspace(0.0, 1.0, 32)), 2)  # a trend: the most
    2.5
    """
    d = pilot - pilot.mean()
    denom = float(d @ d)
    if len(pilot) < 4 or denom <= 0.0:
        return 1.0
    r = float(d[1:] @ d[:-1]) / denom
    if r <= 2 / math.sqrt(len(pilot)):
        return 1.0
    r = min(r, 0.95)
    return min(math.sqrt((1 + r) / (1 - r)), 2.5)


@dataclass(frozen=True)
class Reference:
    """What a finished sketch says about the reference window."""

    binary: bool
    n: int
    level0: float = 0.0  # frame: u = clip((x - level0) / scale0, -clip, clip)
    scale0: float = 1.0
    mean: float = 0.0  # of u (or the rate of 1s for a binary stream)
    std: float = 1.0  # of u
    rho: float = 0.0  # lag-1 autocorrelation of u, clamped to [0, 0.95]
    dispersion: float = 1.0  # 0/1 only: variance of block counts over the binomial variance
    points: tuple[float, ...] = ()  # support of u's histogram ...
    weights: tuple[float, ...] = ()  # ... and its probabilities


class ReferenceSketch:
    """Accumulates a reference window of ``size`` values in fixed memory.

    >>> import numpy as np
    >>> sketch = ReferenceSketch(size=1000, clip=3.0)
    >>> sketch.add_many(np.random.default_rng(0).normal(5.0, 2.0, 1000))
    1000
    >>> ref = sketch.finish()
    >>> round(ref.level0 + ref.scale0 * ref.mean, 1), round(ref.scale0 * ref.std, 1)
    (4.9, 1.9)
    """

    def __init__(self, size: int, clip: float) -> None:
        self.size, self.clip = size, clip
        self._edges = _edges(clip)
        self._clear()

    def _clear(self) -> None:
        self.pilot: list[float] = []
        self.binary = False
        self.level0 = 0.0
        self.scale0 = 1.0
        self.n = 0
        self.sum = 0.0
        self.sum_sq = 0.0
        self.sum_lag = 0.0
        self.prev = 0.0
        self.counts = [0] * (BINS + 2)
        self.blocks: list[int] = []  # 0/1 streams: ones per block of BLOCK values

    @property
    def full(self) -> bool:
        return self.n >= self.size

    # -- feeding --------------------------------------------------------------------------------
    def add_many(self, values: np.ndarray) -> int:
        """Consume values until the sketch is full; return how many were used.

        Fewer than offered (possibly none) also means the sketch restarted: offer the rest again.
        """
        used = 0
        while self.n == 0 and len(self.pilot) < PILOT_SIZE and used < len(values):
            self.pilot.append(float(values[used]))
            used += 1
        if len(self.pilot) == PILOT_SIZE and self.n == 0:
            self._open_frame()
        if self.n == 0 and len(self.pilot) < PILOT_SIZE:
            return used
        take = min(self.size - self.n, len(values) - used)
        if take <= 0:
            return used
        chunk = np.asarray(values[used : used + take], dtype=np.float64)
        if self.binary:
            other = np.flatnonzero((chunk != 0.0) & (chunk != 1.0))
            if other.size:  # not a 0/1 stream after all: start again from that value
                self._clear()
                return used + int(other[0])  # the value itself is not consumed
        self._accumulate(chunk)
        return used + take

    def add(self, x: float) -> bool:
        """:meth:`add_many` for one value, in plain Python (the per-event path).

        Returns False if the sketch restarted without using ``x``: offer it again.
        """
        if self.n == 0 and len(self.pilot) < PILOT_SIZE:
            self.pilot.append(x)
            if len(self.pilot) == PILOT_SIZE:
                self._open_frame()
            return True
        if self.n >= self.size:
            return True
        if self.binary:
            if x != 0.0 and x != 1.0:
                self._clear()
                return False
            u = x
            if self.n % BLOCK == 0:
                self.blocks.append(0)
            self.blocks[-1] += int(x)
        else:
            u = min(max((x - self.level0) / self.scale0, -self.clip), self.clip)
            if u >= self.clip:
                index = BINS + 1
            elif u <= -self.clip:
                index = 0
            else:
                index = bisect.bisect_right(self._edges, u)
            self.counts[index] += 1
        if self.n:
            self.sum_lag += self.prev * u
        self.sum += u
        self.sum_sq += u * u
        self.prev = u
        self.n += 1
        return True

    def frame(self, x: np.ndarray | float) -> np.ndarray | float:
        """The clipped standard units the reference is measured in."""
        return np.clip((x - self.level0) / self.scale0, -self.clip, self.clip)

    def _open_frame(self) -> None:
        pilot = np.asarray(self.pilot)
        self.pilot = []
        self.binary = bool(np.isin(pilot, (0.0, 1.0)).all())
        if not self.binary:
            level = float(np.median(pilot))
            scale = 1.4826 * float(np.median(np.abs(pilot - level)))
            if scale == 0.0:  # discrete values: the median says nothing about spread
                level, scale = float(pilot.mean()), float(pilot.std())
            self.level0, self.scale0 = level, (scale if scale > 0 else 1.0) * _pilot_widening(pilot)
        self._accumulate(pilot)

    def _accumulate(self, x: np.ndarray) -> None:
        u = x if self.binary else self.frame(x)
        if self.binary:
            block = (self.n + np.arange(len(u))) // BLOCK
            ones = np.bincount(block, weights=u, minlength=int(block[-1]) + 1).astype(int)
            first = self.n // BLOCK
            while len(self.blocks) <= int(block[-1]):
                self.blocks.append(0)
            for b in range(first, int(block[-1]) + 1):
                self.blocks[b] += int(ones[b])
        if self.n:
            self.sum_lag += self.prev * float(u[0])
        self.sum_lag += float(u[1:] @ u[:-1])
        self.sum += float(u.sum())
        self.sum_sq += float(u @ u)
        self.prev = float(u[-1])
        self.n += len(u)
        if not self.binary:
            index = np.searchsorted(self._edges, u, side="right")
            index[u >= self.clip] = BINS + 1
            index[u <= -self.clip] = 0
            for i, c in zip(*np.unique(index, return_counts=True), strict=True):
                self.counts[int(i)] += int(c)

    # -- result ---------------------------------------------------------------------------------
    def finish(self) -> Reference:
        n = self.n
        mean = self.sum / n
        var = max(self.sum_sq / n - mean * mean, 0.0)
        cov = self.sum_lag / max(n - 1, 1) - mean * mean
        rho = min(max(cov / var, 0.0), 0.95) if var > 0 else 0.0
        if self.binary:  # flags that come in runs (clustered outliers) carry less information
            return Reference(
                binary=True,
                n=n,
                mean=mean,
                std=math.sqrt(var),
                rho=rho,
                dispersion=self._dispersion(mean),
            )
        edges = np.linspace(-self.clip, self.clip, BINS + 1)
        points = np.r_[-self.clip, (edges[:-1] + edges[1:]) / 2, self.clip]
        counts = np.asarray(self.counts, dtype=np.float64)
        keep = counts > 0
        return Reference(
            binary=False,
            n=n,
            level0=self.level0,
            scale0=self.scale0,
            mean=mean,
            std=math.sqrt(var),
            rho=rho,
            points=tuple(points[keep].tolist()),
            weights=tuple((counts[keep] / counts.sum()).tolist()),
        )

    def _dispersion(self, rate: float) -> float:
        """Variance of the complete blocks' counts over a binomial's: about 1 for independent
        0/1 values, above 1 when ones come in clusters (all lags, not only the first)."""
        counts = np.asarray(self.blocks[: self.n // BLOCK], dtype=np.float64)
        if len(counts) < 10 or not 0.0 < rate < 1.0:
            return 1.0
        return float(counts.var(ddof=1)) / (BLOCK * rate * (1.0 - rate))

    # -- checkpoints ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "pilot": self.pilot,
            "binary": self.binary,
            "level0": self.level0,
            "scale0": self.scale0,
            "n": self.n,
            "sums": [self.sum, self.sum_sq, self.sum_lag, self.prev],
            "counts": self.counts,
            "blocks": self.blocks,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], size: int, clip: float) -> ReferenceSketch:
        sketch = cls(size, clip)
        sketch.pilot = [float(v) for v in data["pilot"]]
        sketch.binary = bool(data["binary"])
        sketch.level0, sketch.scale0 = float(data["level0"]), float(data["scale0"])
        sketch.n = int(data["n"])
        sketch.sum, sketch.sum_sq, sketch.sum_lag, sketch.prev = map(float, data["sums"])
        sketch.counts = [int(c) for c in data["counts"]]
        sketch.blocks = [int(c) for c in data.get("blocks", [])]
        return sketch
