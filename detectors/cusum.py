"""CUSUM tuned to several shift sizes at once, calibrated on the stream's own reference window."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors.base import DriftDetector
from detectors.calibration import ERROR_NODES, thresholds_averaged
from detectors.reference import BLOCK, Reference, ReferenceSketch

_CHUNK = 1 << 16
_ROWS = 256  # rows of many columns advanced at once (update_columns_if_quiet) ...
# ... in blocks of at most this many rows: longer ones each detector takes as fast alone
# (20 features: 6x faster together at 50 rows, 1.7x at 500, even at 2,000, 0.9x at 5,000)
_TOGETHER_MAX = 2048
_SIDES = {"up": (1.0,), "down": (-1.0,), "both": (1.0, -1.0)}
_NEUTRAL_FRAME = (0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0)  # the identity transform


class CUSUM(DriftDetector):
    """Two-sided CUSUM for several shift sizes, with thresholds set for a false-alarm target.

    The first ``reference_size`` values are the reference (see
    :class:`~detectors.reference.ReferenceSketch`): a robust level and scale (median/MAD
    first guess, then a Huber-style mean and standard deviation of values clipped at ``clip``
    scales, so one outlier cannot raise an alarm), the lag-1 autocorrelation ``rho`` (the scale
    is widened by ``sqrt((1 + rho) / (1 - rho))``, the long-run standard deviation of an AR(1)
    process, so autocorrelated noise does not read as drift) and the empirical distribution.

    One CUSUM pair (up and down) runs per entry of ``shifts`` (mean shifts in reference standard
    deviations; the allowance is half the shift), plus, with ``detect_scale``, an upward CUSUM
    on ``|u - mean|`` for growing spread.  Each threshold is set from the reference's own
    distribution (:mod:`detectors.calibration`) so that together they raise one false alarm per
    ``target_arl`` values on average, averaged also over how far the reference's mean (or rate)
    may be from the truth (its standard error: :func:`~detectors.calibration.thresholds_averaged`).

    A reference made only of 0s and 1s (an error stream) switches to Bernoulli likelihood-ratio
    CUSUMs against error rates ``p0 +/- shift * sqrt(p0 * (1 - p0))``; afterwards any non-zero
    value counts as a 1.

    After an alarm the detector takes a new reference from the values that follow: the new
    regime becomes the baseline.  ``update_many`` is vectorised (numpy cumulative sums), and
    gives the same alarms as one-by-one updates.

    Parameters:
        shifts: Mean shifts, in reference standard deviations, to detect fastest.
        target_arl: Average number of values between false alarms on a stationary stream.
        reference_size: Values used to learn the reference.
        clip: Bound, in reference scales, on a single value's influence.
        detect_scale: Also watch for a growing spread (not used on binary streams).
        sides: ``"both"``, or ``"up"``/``"down"`` to watch one direction of the mean only.

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
        change detected at index 3020
        >>> round(detector.result.statistic, 2), detector.result.threshold
        (1.04, 1.0)

    References:
        E. S. Page, "Continuous inspection schemes", Biometrika 41, 1954.
        D. Siegmund, "Sequential Analysis", Springer, 1985 (the run-length approximation).
    """

    name = "cusum"

    def __init__(
        self,
        shifts: tuple[float, ...] = (0.25, 1.0),
        target_arl: float = 500_000.0,
        reference_size: int = 2000,
        clip: float = 3.0,
        detect_scale: bool = True,
        sides: str = "both",
    ) -> None:
        shifts = tuple(float(s) for s in shifts)
        if not shifts or min(shifts) <= 0:
            raise ValueError("shifts must be a non-empty sequence of positive numbers")
        if target_arl <= 1 or reference_size < 64 or clip <= max(shifts) / 2:
            raise ValueError("need target_arl > 1, reference_size >= 64, clip > max(shifts)/2")
        if sides not in _SIDES:
            raise ValueError(f"sides must be one of {sorted(_SIDES)}, got {sides!r}")
        self.shifts = shifts
        self.target_arl = target_arl
        self.reference_size = reference_size
        self.clip = clip
        self.detect_scale = detect_scale
        self.sides = sides
        super().__init__()

    # -- protocol properties -------------------------------------------------------------------
    @property
    def threshold(self) -> float:
        """Statistics are reported as a share of their own threshold: an alarm is above 1."""
        return 1.0

    @property
    def statistic(self) -> float:
        if not self._h:  # still learning the reference (or nothing to watch on this side)
            return 0.0
        return max(s / max(h, 1e-12) for s, h in zip(self._stats, self._h, strict=True))

    @property
    def calibrated(self) -> bool:
        """Whether the reference window is complete and the CUSUMs are running."""
        return self._sketch is None

    def values_to_calibrate(self) -> int:
        """At least this many more values before it is calibrated (0: it is)."""
        if self._restart_pending:
            return self.reference_size
        sketch = self._sketch
        if sketch is None:
            return 0
        return max(1, self.reference_size - (sketch.n or len(sketch.pilot)))

    # -- state ---------------------------------------------------------------------------------
    def _reset(self) -> None:
        self._sketch: ReferenceSketch | None = ReferenceSketch(self.reference_size, self.clip)
        self._frame = [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
        self._binary = False
        self._sources: list[int] = []  # which transformed value each CUSUM reads ...
        self._alphas: list[float] = []  # ... as increment = alpha * value + beta
        self._betas: list[float] = []
        self._h: list[float] = []
        self._stats: list[float] = []
        self._labels: list[str] = []  # what each CUSUM watches, for people
        self._baseline: dict[str, float] = {}
        self._restart_pending = False

    @property
    def fired(self) -> list[str]:
        """After an alarm: which of the CUSUMs crossed, e.g. ``["mean +0.25 sd"]``."""
        if not self._restart_pending:
            return []
        return [
            label for label, s, h in zip(self._labels, self._stats, self._h, strict=True) if s > h
        ]

    @property
    def baseline(self) -> dict[str, float]:
        """The reference in the stream's own units: ``mean`` and ``sd`` (or ``rate`` for 0/1)."""
        return dict(self._baseline)

    def _get_state(self) -> dict[str, Any]:
        return {
            "sketch": self._sketch.to_dict() if self._sketch else None,
            "frame": self._frame,
            "binary": self._binary,
            "cusums": [self._sources, self._alphas, self._betas, self._h, self._stats],
            "labels": self._labels,
            "baseline": self._baseline,
            "restart_pending": self._restart_pending,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        sketch = state["sketch"]
        self._sketch = (
            ReferenceSketch.from_dict(sketch, self.reference_size, self.clip) if sketch else None
        )
        self._frame = [float(v) for v in state["frame"]]
        self._binary = bool(state["binary"])
        sources, alphas, betas, h, stats = state["cusums"]
        self._sources = [int(v) for v in sources]
        self._alphas, self._betas = [float(v) for v in alphas], [float(v) for v in betas]
        self._h, self._stats = [float(v) for v in h], [float(v) for v in stats]
        self._labels = [str(v) for v in state["labels"]]
        self._baseline = {str(k): float(v) for k, v in state["baseline"].items()}
        self._restart_pending = bool(state["restart_pending"])

    # -- calibration ---------------------------------------------------------------------------
    def _calibrate(self, ref: Reference) -> None:
        CUSUM._calibrate_together([(self, ref)])

    @staticmethod
    def _calibrate_together(pairs: Sequence[tuple[CUSUM, Reference]]) -> None:
        """Calibrate each detector on its reference, every arm's threshold in one call (a
        threshold does not depend on the arms beside it: the same as one at a time)."""
        prepared = [(d, d._prepare(ref)) for d, ref in pairs]
        targets = [budget for _, (budget, arms, _) in prepared for _ in arms]
        thresholds = thresholds_averaged(targets, [a for _, (_, arms, _) in prepared for a in arms])
        at = 0
        for d, (_, arms, widen) in prepared:
            d._h = [h * widen for h in thresholds[at : at + len(arms)]]
            at += len(arms)

    def _prepare(
        self, ref: Reference
    ) -> tuple[float, list[list[tuple[np.ndarray, np.ndarray]]], float]:
        """Everything of a calibration but the thresholds: sets the reference frame and the
        CUSUMs' increments; returns what the thresholds are computed from (the false-alarm
        budget of each arm, the arms' increments) and the factor they are widened by."""
        self._sketch = None
        self._binary = ref.binary
        # (source, alpha, beta, increments under the reference if it were off by each of
        # ERROR_NODES standard errors toward the arm: [(values, weights)])
        cusums: list[tuple[int, float, float, list[tuple[np.ndarray, np.ndarray]]]] = []
        labels: list[str] = []
        if ref.binary:
            p0 = (ref.mean * ref.n + 0.5) / (ref.n + 1)  # never exactly 0 or 1
            sd0 = math.sqrt(p0 * (1 - p0))
            error = sd0 / math.sqrt(max(ref.n, 1))  # of the estimated rate
            for shift in self.shifts:
                for p1 in (p0 + sign * shift * sd0 for sign in _SIDES[self.sides]):
                    if 0 < p1 < 1:
                        one, zero = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
                        incs = np.array([one, zero])
                        toward = math.copysign(error, p1 - p0)
                        rates = np.clip(p0 + toward * ERROR_NODES, 1e-9, 1 - 1e-9)
                        variants = [(incs, np.array([p, 1 - p])) for p in rates]
                        cusums.append((0, one - zero, zero, variants))
                        labels.append(f"rate {'+' if p1 > p0 else '-'}{shift:g} sd")
            self._baseline = {"rate": p0}
        else:
            std = ref.std if ref.std > 0 else 1.0
            long_run = math.sqrt((1 + ref.rho) / (1 - ref.rho))
            points, weights = np.asarray(ref.points), np.asarray(ref.weights)
            y = _standardise(points, weights)
            # the mean arms read values less the mean over the long-run sd: the estimated
            # mean's standard error is 1/sqrt(n) in those units whatever the autocorrelation
            offsets = ERROR_NODES / math.sqrt(max(ref.n, 1))
            for shift in self.shifts:
                for sign in _SIDES[self.sides]:
                    base = sign * y - shift / 2
                    cusums.append((0, sign, -shift / 2, [(base + e, weights) for e in offsets]))
                    labels.append(f"mean {'+' if sign > 0 else '-'}{shift:g} sd")
            spread = np.abs(points - ref.mean) / std
            spread_mean = float(weights @ spread)
            spread_sd = math.sqrt(float(weights @ (spread - spread_mean) ** 2)) or 1.0
            rho_spread = ref.rho**2
            spread_long_run = math.sqrt((1 + rho_spread) / (1 - rho_spread))
            self._frame = [
                ref.level0,
                ref.scale0,
                ref.mean,
                std * long_run,
                std * _spread_margin(ref),
                spread_mean,
                spread_sd * spread_long_run,
            ]
            if self.detect_scale:
                a = _standardise(spread, weights)
                cusums.append((1, 1.0, -0.5, [(a - 0.5, weights)]))  # margin: _spread_margin
                labels.append("spread up")
            self._baseline = {
                "mean": ref.level0 + ref.scale0 * ref.mean,
                "sd": ref.scale0 * std,
            }
        budget = self.target_arl * len(cusums)  # each one-sided CUSUM's share of the target
        self._sources = [c[0] for c in cusums]
        self._alphas = [c[1] for c in cusums]
        self._betas = [c[2] for c in cusums]
        widen = 1.0
        if ref.binary:
            widen = _clustering(ref)
            if widen > 1.0:
                self._baseline["clustering"] = widen
        self._h = []  # set by _calibrate_together
        self._stats = [0.0] * len(cusums)
        self._labels = labels
        return budget, [c[3] for c in cusums], widen

    def keep_spread_of(self, old: CUSUM) -> None:
        """After re-learning (a rolling reference): never judge the level or the spread against
        a *narrower* spread than the reference before.  A quieter window is no reason to page
        sooner; on autocorrelated streams one window's spread is a noisy (low) estimate."""
        if self._binary or old._binary or not (self.calibrated and old.calibrated):
            return
        mine, theirs = self._frame[1] * self._frame[4], old._frame[1] * old._frame[4]
        if theirs > mine > 0:  # level and spread both read against the wider spread
            self._frame[3] *= theirs / mine
            self._frame[4] *= theirs / mine
        # the level's long-run scale too: a window whose autocorrelation reads lower would
        # judge the level against a narrower scale than the one before
        mine, theirs = self._frame[1] * self._frame[3], old._frame[1] * old._frame[3]
        if theirs > mine > 0:
            self._frame[3] *= theirs / mine

    def _transform(self, x: np.ndarray) -> list[np.ndarray]:
        """The values the CUSUMs read: [standardised level, standardised spread] or [0/1]."""
        if self._binary:
            return [(x != 0).astype(np.float64)]
        return list(_level_and_spread(x, self._frame, self.clip))

    # -- one value -----------------------------------------------------------------------------
    def _update(self, x: float) -> bool:
        if self._restart_pending:
            self._reset()
        if self._sketch is not None:
            if not self._sketch.add(x):  # the sketch restarted before this value
                self._sketch.add(x)
            if self._sketch.full:
                self._calibrate(self._sketch.finish())
            return False
        if self._binary:
            values = (1.0 if x != 0 else 0.0,)
        else:
            level0, scale0, mean, scale_long, std, spread_mean, spread_scale = self._frame
            u = min(max((x - level0) / scale0, -self.clip), self.clip)
            values = ((u - mean) / scale_long, (abs(u - mean) / std - spread_mean) / spread_scale)
        alarm = False
        stats = self._stats
        for j, h in enumerate(self._h):
            s = stats[j] + self._alphas[j] * values[self._sources[j]] + self._betas[j]
            stats[j] = s if s > 0.0 else 0.0
            alarm = alarm or stats[j] > h
        self._restart_pending = alarm
        return alarm

    # -- a batch -------------------------------------------------------------------------------
    def update_many(self, values: Any) -> np.ndarray:
        positions, _ = self._consume(values, stop_at_alarm=False)
        return positions

    def update_until_alarm(self, values: Any) -> int:
        _, consumed = self._consume(values, stop_at_alarm=True)
        return consumed

    @classmethod
    def update_columns_if_quiet(cls, detectors: Sequence[CUSUM], columns: np.ndarray) -> np.ndarray:
        """Every running CUSUM pair of every detector over its column in one set of numpy
        calls (a model's features advance together); a detector whose column would raise an
        alarm, holds a non-finite value or is still learning its reference is left untouched,
        as are all of them for a block of more than 2,048 rows (each is as fast alone then).
        The arithmetic is the same, value for value, as :meth:`update_until_alarm`'s.

        >>> rng = np.random.default_rng(7)
        >>> together = [CUSUM(reference_size=64) for _ in range(3)]
        >>> alone = [CUSUM(reference_size=64) for _ in range(3)]
        >>> warm = rng.normal(size=(100, 3))
        >>> for j in range(3):
        ...     _ = together[j].update_many(warm[:, j]), alone[j].update_many(warm[:, j])
        >>> block = rng.normal(size=(50, 3))
        >>> block[10:, 2] += 3.0  # feature 2 moves: that CUSUM pages, so it is left to the caller
        >>> CUSUM.update_columns_if_quiet(together, block).tolist()
        [True, True, False]
        >>> for j in range(2):
        ...     _ = alone[j].update_until_alarm(block[:, j])
        >>> [together[j].get_state() == alone[j].get_state() for j in range(2)]
        [True, True]
        >>> together[2].n_seen  # untouched: still at the warm-up
        100
        """
        n, width = columns.shape
        taken = np.zeros(width, dtype=bool)
        if n == 0 or n > _TOGETHER_MAX:
            return taken
        finite = np.isfinite(columns).all(axis=0)
        ready = [
            j
            for j, d in enumerate(detectors)
            if finite[j] and d._sketch is None and not d._restart_pending
        ]
        if not ready:
            return taken
        chosen = [detectors[j] for j in ready]
        m = len(chosen)
        # a 0/1 detector reads only its level (set below); its unused frame has a zero spread
        # scale, so it gets a neutral one rather than a division by zero
        frames = np.array([_NEUTRAL_FRAME if d._binary else d._frame for d in chosen]).T
        bound = np.array([d.clip for d in chosen])
        binary = [k for k, d in enumerate(chosen) if d._binary]
        owner = [k for k, d in enumerate(chosen) for _ in d._h]
        source = [s * m + k for k, d in enumerate(chosen) for s in d._sources]
        alphas = np.array([a for d in chosen for a in d._alphas])
        betas = np.array([b for d in chosen for b in d._betas])
        h = np.array([v for d in chosen for v in d._h])
        floor = -np.array([v for d in chosen for v in d._stats])
        crossed = np.zeros(len(h), dtype=bool)
        walk_end, low = None, floor
        # rows in cache-sized blocks, carrying the walk and its running minimum across them,
        # so every sum is the one a single cumulative sum over the column would take
        for top in range(0, n, _ROWS):
            x = columns[top : top + _ROWS, ready]
            level, spread = _level_and_spread(x, frames, bound)  # a column per detector
            if binary:
                level[:, binary] = (x[:, binary] != 0).astype(np.float64)
            transformed = np.concatenate([level, spread], axis=1)  # source s of k: s*m + k
            walk = alphas * transformed[:, source] + betas
            if walk_end is not None:
                walk[0] += walk_end
            np.cumsum(walk, axis=0, out=walk)
            low = np.minimum(np.minimum.accumulate(walk, axis=0), low)
            path = walk - low
            crossed |= (path > h).any(axis=0)
            walk_end, low = walk[-1], low[-1]
        alarmed = np.bincount(owner, weights=crossed, minlength=m) > 0
        final = np.maximum(path[-1], 0.0).tolist()
        at = 0
        for k, d in enumerate(chosen):
            width_k = len(d._h)
            if not alarmed[k]:
                d._stats = final[at : at + width_k]
                d.n_seen += n
                d._drift_detected = False
                taken[ready[k]] = True
            at += width_k
        return taken

    @classmethod
    def learn_columns(cls, detectors: Sequence[CUSUM], columns: np.ndarray) -> None:
        """Each detector learns its column; where that completes its reference (at the
        column's last value: a column holds at most the values it still needs), the thresholds
        of all those detectors are computed in one call (a calibration costs about 0.5 ms,
        mostly numpy's fixed cost, so twenty features' references completing in one block cost
        about as much as one).  Any other column goes through ``update_many``.

        >>> rng = np.random.default_rng(3)
        >>> together = [CUSUM(reference_size=64) for _ in range(3)]
        >>> alone = [CUSUM(reference_size=64) for _ in range(3)]
        >>> block = rng.normal(size=(64, 3))
        >>> CUSUM.learn_columns(together, block)
        >>> for j in range(3):
        ...     _ = alone[j].update_many(block[:, j])
        >>> [together[j].calibrated and together[j].get_state() == alone[j].get_state()
        ...  for j in range(3)]
        [True, True, True]
        """
        completed: list[tuple[CUSUM, Reference]] = []
        finite = np.isfinite(columns).all(axis=0)
        for j, d in enumerate(detectors):
            column = columns[:, j]
            if (
                d._sketch is None
                or d._restart_pending
                or not finite[j]
                or len(column) > d.values_to_calibrate()
            ):
                d.update_many(column)
                continue
            sketch, i = d._sketch, 0
            while i < len(column) and not sketch.full:
                i += sketch.add_many(column[i:])
            d.n_seen += i
            d._drift_detected = False
            if not sketch.full:
                continue
            if i < len(column):  # values_to_calibrate says it cannot end early; if it did,
                # the rest must not be lost: calibrate now, then the rest as usual
                d._calibrate(sketch.finish())
                d.update_many(column[i:])
                continue
            completed.append((d, sketch.finish()))
        if completed:
            cls._calibrate_together(completed)

    def _consume(self, values: Any, stop_at_alarm: bool) -> tuple[np.ndarray, int]:
        """Vectorised updates: the alarm positions in ``values``, and how many were consumed
        (fewer than all only when ``stop_at_alarm`` and a value raised an alarm)."""
        arr = np.asarray(values, dtype=np.float64).ravel()
        if arr.size == 0:
            return np.empty(0, dtype=np.int64), 0
        finite = np.isfinite(arr)
        positions = np.flatnonzero(finite)
        vals = arr[positions]
        alarms: list[int] = []
        i = 0
        while i < len(vals):
            if self._restart_pending:
                self._reset()
            if self._sketch is not None:
                i += self._sketch.add_many(vals[i:])
                if self._sketch.full:
                    self._calibrate(self._sketch.finish())
                continue
            chunk = vals[i : i + _CHUNK]
            hit = self._scan(chunk)
            if hit is None:
                i += len(chunk)
            else:
                alarms.append(i + hit)
                self._restart_pending = True
                i += hit + 1
                if stop_at_alarm:
                    break
        self.n_seen += i
        self.n_detections += len(alarms)
        if stop_at_alarm and alarms:
            consumed = int(positions[i - 1]) + 1
            self.n_rejected += consumed - i
            self._drift_detected = True
            return positions[np.asarray(alarms, dtype=np.int64)], consumed
        self.n_rejected += len(arr) - len(vals)
        self._drift_detected = bool(alarms) and alarms[-1] == len(vals) - 1 and bool(finite[-1])
        return positions[np.asarray(alarms, dtype=np.int64)], len(arr)

    def _scan(self, chunk: np.ndarray) -> int | None:
        """Run every CUSUM over ``chunk``; stop at the first alarm and return its offset."""
        transformed = self._transform(chunk)
        first = len(chunk)
        paths = []
        for j, h in enumerate(self._h):
            walk = np.cumsum(self._alphas[j] * transformed[self._sources[j]] + self._betas[j])
            # Lindley's recursion S_t = max(0, S_{t-1} + v_t) in closed form.
            path = walk - np.minimum(np.minimum.accumulate(walk), -self._stats[j])
            paths.append(path)
            over = np.flatnonzero(path[:first] > h)
            if over.size:
                first = int(over[0])
        end = first if first < len(chunk) else len(chunk) - 1
        self._stats = [float(max(p[end], 0.0)) for p in paths]
        return first if first < len(chunk) else None

    @classmethod
    def _unit_test_params(cls) -> dict[str, Any]:
        return {"shifts": (1.0,), "target_arl": 10_000.0, "reference_size": 200}


def _level_and_spread(x: np.ndarray, frame: Any, clip: Any) -> tuple[np.ndarray, np.ndarray]:
    """A numeric CUSUM's two inputs, the standardised level and spread of ``x``, in the frame
    ``(level0, scale0, mean, scale_long, std, spread_mean, spread_scale)``: numbers for one
    detector, or a row of them for a column each (``clip`` likewise)."""
    level0, scale0, mean, scale_long, std, spread_mean, spread_scale = frame
    u = np.clip((x - level0) / scale0, -clip, clip)
    return (u - mean) / scale_long, (np.abs(u - mean) / std - spread_mean) / spread_scale


def _spread_margin(ref: Reference) -> float:
    """The spread CUSUM reads ``|u - mean| / std``: a standard deviation estimated too low
    reads as more spread.  Widen it by two standard errors of its log,
    ``sqrt((1 + rho^2) / (2 n (1 - rho^2)))`` (3.2% for 2,000 independent values, 10% at
    rho = 0.9).  A rolling reference re-learns every 10,000 values, so over 1M values each
    feature draws a hundred estimates: with one standard error, the low ones made "spread up"
    page on stationary AR(0.9) features (feature CUSUM alarms on four seeds of 1M events with
    20 features: 1, 3, 2 and 1; with two standard errors 1, 0, 0 and 0)."""
    n = max(ref.n, 2)
    rho2 = min(ref.rho, 0.95) ** 2
    return math.exp(2 * math.sqrt((1 + rho2) / (2 * n * (1 - rho2))))


def _clustering(ref: Reference) -> float:
    """How much a 0/1 reference's ones cluster: the factor by which the log-likelihood walk's
    variance (and so its threshold) grows over independent values.  The AR(1) factor
    ``(1 + rho) / (1 - rho)`` sees runs; the dispersion of block counts sees clusters at every
    lag.  Each is used only when it stands out of its own noise."""
    widen = 1.0
    if ref.rho > 2 / math.sqrt(ref.n):
        widen = (1 + ref.rho) / (1 - ref.rho)
    blocks = ref.n // BLOCK
    if blocks >= 10 and ref.dispersion > 1 + 2 * math.sqrt(2 / (blocks - 1)):
        widen = max(widen, ref.dispersion)
    return widen


def _standardise(points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    mean = float(weights @ points)
    sd = math.sqrt(float(weights @ (points - mean) ** 2)) or 1.0
    return (points - mean) / sd
