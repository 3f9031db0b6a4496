"""Security monitor: the rate of anomalous inputs (Mahalanobis outliers), watched by CUSUM."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special  # not scipy.stats: ~70 MB of RSS at import, special ~20

from detectors.base import DriftDetector
from detectors.cusum import CUSUM
from detectors.stat_tools import welford_add, welford_merge
from detectors.windowed import VectorInput

RUN_EVERY = 10  # a long run of flagged rows counts again each time it grows this many rows
#: unflagged rows a run may skip and go on: autocorrelated traffic flickers across the cutoff
#: during one excursion.  Measured on 20 AR(0.9) features, 1M rows per seed: runs of adjacent
#: flags only (and a count every 50th row) false-alarmed the rate 4, 4, 5 and 3 times on seeds
#: 0-3; runs that bridge up to 3 unflagged rows, counted again every 10 rows, once in all four.
#: The cost, bench/multivariate.py's changes (10 runs): correlation 0.7 -> 0 found after 30 rows
#: instead of 13, 5 % outlier rows after 114 instead of 75; as often as before.
RUN_GAP = 3
_NEVER = 1 << 40  # rows since a flag, before the first one


class InputOutlierRate(VectorInput, DriftDetector):
    """Scores every input row for anomaly and alarms when anomalous rows become more frequent.

    The first ``reference_size`` rows give the mean and covariance of normal traffic.  Each
    later row's squared Mahalanobis distance is its ``outlier_score``; a row is *flagged* when
    the score exceeds the ``1 - flag_alpha`` chi-square quantile.  A single odd row is not an
    incident, a rising share of them is (probing, scraping, a broken upstream feature, an
    attack), so the 0/1 flags feed a calibrated upward :class:`~detectors.CUSUM`, and that is
    what raises the alarm.  A run of flagged rows counts once (and again every
    :data:`RUN_EVERY` rows while it lasts): autocorrelated traffic wanders outside in clumps,
    which counted row by row read as a rising rate; flags at most :data:`RUN_GAP` rows apart
    belong to one run.  ``last_score`` and ``last_flagged`` describe the latest row.

    Parameters:
        reference_size: Rows used to learn normal traffic.
        flag_alpha: Share of normal rows flagged (sets the score threshold).
        target_arl: Rows between false alarms of the flag-rate CUSUM.

    Examples:
        >>> import numpy as np
        >>> from detectors import InputOutlierRate
        >>> rng = np.random.default_rng(0)
        >>> normal = rng.normal(0, 1, (5000, 4))
        >>> probing = rng.normal(0, 1, (1000, 4))
        >>> probing[::10] *= 6  # one request in ten is far outside normal traffic
        >>> detector = InputOutlierRate()
        >>> alarms = detector.update_many(np.vstack([normal, probing])).tolist()
        >>> alarms[0] > 5000, alarms[0] < 5200
        (True, True)
    """

    name = "input_outlier_rate"
    state_version = 2  # 2: runs bridge short gaps (``since``/``age`` instead of ``run``)
    _state_fields = (
        "_width",
        "_ref_n",
        "_ref_mean",
        "_ref_scatter",
        "_precision",
        "_cutoff",
        "last_score",
        "last_flagged",
        "_since",
        "_age",
        "_rate",
    )

    def __init__(
        self, reference_size: int = 1000, flag_alpha: float = 1e-3, target_arl: float = 500_000.0
    ) -> None:
        if reference_size < 10 or not 0 < flag_alpha < 1:
            raise ValueError("need reference_size >= 10 and 0 < flag_alpha < 1")
        self.reference_size = reference_size
        self.flag_alpha = flag_alpha
        self.target_arl = target_arl
        super().__init__()

    @property
    def calibrated(self) -> bool:
        """Normal traffic learnt, and the flag rate's reference too."""
        return self._ref_n >= self.reference_size and self._rate.calibrated

    def values_to_calibrate(self) -> int:
        """At least this many more rows before it is calibrated (0: it is)."""
        rows = max(0, self.reference_size - self._ref_n)
        flags = self._rate.values_to_calibrate() if rows == 0 else self._rate.reference_size
        return rows + flags

    @property
    def statistic(self) -> float:
        return self._rate.statistic

    @property
    def threshold(self) -> float:
        return self._rate.threshold

    def _reset(self) -> None:
        self._width = None
        self._ref_n = 0
        self._ref_mean = np.zeros(0)
        self._ref_scatter = np.zeros(0)
        self._precision = np.zeros(0)
        self._cutoff = 0.0
        self.last_score = 0.0
        self.last_flagged = False
        self._since = _NEVER  # rows since the latest flagged row
        self._age = 0  # rows from the start of the latest run to its latest flagged row
        self._rate = CUSUM(shifts=(1.0, 3.0), target_arl=self.target_arl, sides="up")

    def _clean(self, block: Any) -> bool:
        """Rows that the one-by-one path would all accept: finite, of the width seen first."""
        return (
            isinstance(block, np.ndarray)
            and block.dtype == np.float64
            and block.ndim == 2
            and block.shape[1] == self._width
            and bool(np.isfinite(block).all())
        )

    def outlier_score(self, row: np.ndarray) -> float:
        """Squared Mahalanobis distance of ``row`` from normal traffic."""
        diff = np.asarray(row, dtype=np.float64) - self._ref_mean
        return float(diff @ self._precision @ diff)

    def _update(self, x: np.ndarray) -> bool:
        if self._ref_n < self.reference_size:
            self._ref_n += 1
            self._ref_mean, self._ref_scatter = welford_add(
                self._ref_n, self._ref_mean, self._ref_scatter, x
            )
            if self._ref_n == self.reference_size:
                cov = self._ref_scatter / (self._ref_n - 1)
                cov += np.eye(len(cov)) * 1e-9 * max(float(np.trace(cov)), 1e-12)
                self._precision = np.linalg.pinv(cov)
                self._ref_scatter = np.zeros(0)  # the precision is all that is needed now
                self._cutoff = float(special.chdtri(len(x), self.flag_alpha))  # chi2's isf
            return False
        self.last_score = self.outlier_score(x)
        self.last_flagged = self.last_score > self._cutoff
        self._rate.update(1.0 if self._count(self.last_flagged) else 0.0)
        return self._rate.drift_detected

    def _count(self, flagged: bool) -> bool:
        """:meth:`_declump` for one row (no numpy: the one-by-one path calls it per row)."""
        if not flagged:
            self._since += 1
            return False
        if self._since > RUN_GAP:  # a new run
            self._since, self._age = 0, 0
            return True
        before, self._age = self._age, self._age + self._since + 1
        self._since = 0
        return (self._age + 1) // RUN_EVERY > (before + 1) // RUN_EVERY

    def _declump(self, flagged: np.ndarray) -> np.ndarray:
        """The flags the rate counts: the first of each run of flagged rows (flags at most
        :data:`RUN_GAP` rows apart), and then a flag each time the run has grown by another
        :data:`RUN_EVERY` rows.  Autocorrelated inputs leave normal traffic in
        excursions that flag many rows in a row; counted one by one, those clumps read as a
        rising rate.  Isolated outliers (probing) count one each, as before, and a stream that
        stays outside still counts one row in RUN_EVERY, far above the normal rate."""
        flagged = np.asarray(flagged, dtype=bool)
        counted = np.zeros(len(flagged))
        at = np.flatnonzero(flagged)
        if not len(at):
            self._since += len(flagged)
            return counted
        previous = np.concatenate([[-1 - self._since], at[:-1]])
        starts = at - previous > RUN_GAP + 1
        # each flag's run start: the latest start at or before it (the carried run before any)
        carried = -1 - self._since - self._age
        run_start = np.maximum.accumulate(np.where(starts, at, carried))
        age = at - run_start
        before = np.concatenate([[self._age], age[:-1]])  # the run's previous flag's age
        crossed = (age + 1) // RUN_EVERY > (before + 1) // RUN_EVERY
        counted[at[starts | crossed]] = 1.0
        self._since = len(flagged) - 1 - int(at[-1])
        self._age = int(age[-1])
        return counted

    def update_until_alarm(self, values: Any) -> int:
        """Vectorised: normal traffic is learnt in blocks up to the row before the one that
        completes it; then scores for the whole batch at once, the flags into the inner CUSUM's
        own vectorised path."""
        rows = self._batch(values)
        n, i = len(rows), 0
        while i < n and self._ref_n < self.reference_size:
            room = self.reference_size - self._ref_n - 1  # the completing row: one by one
            block = rows[i : i + room]
            if room > 0 and self._clean(block):
                self._ref_mean, self._ref_scatter = welford_merge(
                    self._ref_n, self._ref_mean, self._ref_scatter, block
                )
                self._ref_n += len(block)
                self.n_seen += len(block)
                self._drift_detected = False
                i += len(block)
                continue
            self.update(rows[i])  # the first row (its width), a row to reject, the last one
            i += 1
        block = rows[i:]
        if not len(block):
            return n
        if not self._clean(block):  # rows to reject among them: the one-by-one path counts them
            return i + super().update_until_alarm(block)
        diff = block - self._ref_mean
        scores = ((diff @ self._precision) * diff).sum(axis=1)
        flagged = scores > self._cutoff
        run_before = self._since, self._age
        counted = self._declump(flagged)
        used = self._rate.update_until_alarm(counted)
        if used < len(counted):  # stopped at an alarm: the run as of that row
            self._since, self._age = run_before
            self._declump(flagged[:used])
        self.n_seen += used
        self.last_score, self.last_flagged = float(scores[used - 1]), bool(flagged[used - 1])
        self._drift_detected = self._rate.drift_detected
        self.n_detections += int(self._drift_detected)
        return i + used

    @classmethod
    def _unit_test_params(cls) -> dict[str, Any]:
        return {"reference_size": 200, "flag_alpha": 0.01, "target_arl": 50_000.0}
