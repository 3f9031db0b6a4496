"""ADWIN: adaptive windowing over an exponential histogram."""

from __future__ import annotations

import math
from typing import Any

from detectors.base import DriftDetector


class ADWIN(DriftDetector):
    """Adaptive windowing drift detector, giving the same detections as ``river.drift.ADWIN``.

    The window is kept as an exponential histogram: row ``i`` holds up to ``max_buckets`` summaries
    (sum and variance) of ``2**i`` values each, so memory grows with the log of the window.  Every
    ``clock`` updates all cuts of the window into an older and a newer part are tested; when the
    means of the two parts differ by more than the Hoeffding-style bound for confidence
    ``delta``, the oldest summaries are dropped and an alarm is raised.

    As river does, the update after an alarm starts a fresh window.  Unlike river's compiled,
    opaque helper, the state exports to a JSON checkpoint.

    Parameters:
        delta: Confidence of the cut test; smaller means fewer, later alarms.
        clock: Test the cuts once every ``clock`` updates.
        max_buckets: Summaries per histogram row before two are merged.
        min_window_length: Smallest sub-window either side of a cut.
        grace_period: Values seen before any test.

    Examples:
        >>> import random
        >>> from detectors import ADWIN
        >>> rng = random.Random(12345)
        >>> detector = ADWIN()
        >>> stream = [rng.gauss(0, 0.1) for _ in range(1000)] + [rng.gauss(2, 0.1) for _ in range(100)]
        >>> for i, x in enumerate(stream):
        ...     detector.update(x)
        ...     if detector.drift_detected:
        ...         print(f"change detected at index {i}, window now {detector.width:.0f}")
        ...         break
        change detected at index 1023, window now 40

    References:
        A. Bifet and R. Gavaldà, "Learning from time-changing data with adaptive windowing",
        SIAM International Conference on Data Mining, 2007.
    """

    name = "adwin"

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        if not 0 < delta < 1:
            raise ValueError("delta must be in (0, 1)")
        if clock < 1 or max_buckets < 2 or min_window_length < 1 or grace_period < 0:
            raise ValueError(
                "clock >= 1, max_buckets >= 2, min_window_length >= 1, grace_period >= 0"
            )
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        super().__init__()

    def _reset(self) -> None:
        # rows[i] = ([sums], [variances]) of summaries covering 2**i values each, oldest first.
        self._rows: list[tuple[list[float], list[float]]] = [([], [])]
        self.total = 0.0
        self.variance = 0.0  # sum of squared deviations over the window
        self.width = 0.0
        self._tick = 0
        self._statistic = 0.0
        self._threshold = math.inf
        self._restart_pending = False

    # -- readings ----------------------------------------------------------------------------
    @property
    def estimation(self) -> float:
        """Mean of the current window."""
        return self.total / self.width if self.width else 0.0

    @property
    def statistic(self) -> float:
        """Largest |mean(older) - mean(newer)| found at the last test."""
        return self._statistic

    @property
    def threshold(self) -> float:
        """The cut bound at the cut where the statistic was found."""
        return self._threshold

    # -- the algorithm ------------------------------------------------------------------------
    def _update(self, x: float) -> bool:
        if self._restart_pending:  # as river does: after an alarm, start a fresh window
            self._reset()
        self._insert(x)
        self._tick += 1
        if self._tick % self.clock != 0 or self.width <= self.grace_period:
            return False
        self._restart_pending = self._shrink_while_cut_found()
        return self._restart_pending

    def _insert(self, x: float) -> None:
        sums, variances = self._rows[0]
        sums.append(x)
        variances.append(0.0)
        self.width += 1.0
        if self.width > 1.0:
            d = x - self.total / (self.width - 1.0)
            self.variance += (self.width - 1.0) * d * d / self.width
        self.total += x
        self._merge_full_rows()

    def _merge_full_rows(self) -> None:
        row = 0
        while len(self._rows[row][0]) == self.max_buckets + 1:
            sums, variances = self._rows[row]
            size = float(1 << row)
            mean_a, mean_b = sums[0] / size, sums[1] / size
            merged_sum = sums[0] + sums[1]
            merged_var = (
                variances[0] + variances[1] + size * 0.5 * (mean_a - mean_b) * (mean_a - mean_b)
            )
            if row + 1 == len(self._rows):
                self._rows.append(([], []))
            self._rows[row + 1][0].append(merged_sum)
            self._rows[row + 1][1].append(merged_var)
            del sums[:2], variances[:2]
            if len(self._rows[row + 1][0]) <= self.max_buckets:
                break
            row += 1

    def _drop_oldest(self) -> None:
        last = len(self._rows) - 1
        sums, variances = self._rows[last]
        size = float(1 << last)
        oldest_sum, oldest_var = sums.pop(0), variances.pop(0)
        self.width -= size
        self.total -= oldest_sum
        mean_dropped, mean_kept = oldest_sum / size, self.total / self.width
        self.variance -= oldest_var + size * self.width * (mean_dropped - mean_kept) ** 2 / (
            size + self.width
        )
        if not sums:
            self._rows.pop()

    def _shrink_while_cut_found(self) -> bool:
        found, self._statistic, self._threshold = self._find_cut()
        drifted = found
        while found and self.width > 0:
            self._drop_oldest()
            found, _, _ = self._find_cut()
        return drifted

    def _find_cut(self) -> tuple[bool, float, float]:
        """Scan cuts from the oldest end.

        Returns ``(True, gap, bound)`` for the first cut whose means differ by more than the
        bound, else ``(False, gap, bound)`` for the cut that came closest (largest gap/bound).
        """
        n_old, n_new = 0.0, self.width
        sum_old, sum_new = 0.0, self.total
        delta_prime = math.log(2.0 * math.log(self.width) / self.delta)
        mean_var = self.variance / self.width
        closest = (0.0, 0.0, math.inf)  # (ratio, gap, bound)
        for row in range(len(self._rows) - 1, -1, -1):
            size = float(1 << row)
            sums = self._rows[row][0]
            for k, s in enumerate(sums):
                n_old += size
                n_new -= size
                sum_old += s
                sum_new -= s
                if row == 0 and k == len(sums) - 1:
                    return False, closest[1], closest[2]
                if n_new < self.min_window_length or n_old < self.min_window_length:
                    continue
                gap = abs(sum_old / n_old - sum_new / n_new)
                m_recip = 1.0 / (n_old - self.min_window_length + 1.0) + 1.0 / (
                    n_new - self.min_window_length + 1.0
                )
                bound = (
                    math.sqrt(2.0 * m_recip * mean_var * delta_prime)
                    + 2.0 / 3.0 * delta_prime * m_recip
                )
                if gap > bound:
                    return True, gap, bound
                if bound > 0 and gap / bound > closest[0]:
                    closest = (gap / bound, gap, bound)
        return False, closest[1], closest[2]

    # -- checkpoints -------------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        return {
            "rows": [[list(s), list(v)] for s, v in self._rows],
            "total": self.total,
            "variance": self.variance,
            "width": self.width,
            "tick": self._tick,
            "statistic": self._statistic,
            "threshold": self._threshold,
            "restart_pending": self._restart_pending,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self._rows = [([float(x) for x in s], [float(x) for x in v]) for s, v in state["rows"]]
        self.total = float(state["total"])
        self.variance = float(state["variance"])
        self.width = float(state["width"])
        self._tick = int(state["tick"])
        self._statistic = float(state["statistic"])
        self._threshold = float(state["threshold"])
        self._restart_pending = bool(state["restart_pending"])
