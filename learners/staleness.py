"""A trigger of the learner's own: the champion has grown stale against its own first rows.

Error alarms page people, so they are calibrated for about one false alarm per million events
per model, every signal together (docs/quiet-benchmark.md).  On a stream whose concept moves all
the time (prices, demand, anything that follows the days and seasons) such a detector fires
rarely, late, and against a baseline a new version inherits from its predecessor; on Elec2,
updates at its alarms scored what updates at random times score (docs/elec2-benchmark.md).

A learner can afford a far more sensitive trigger than a pager: a false trigger costs one gated
training run, never a page, and the gate refuses a candidate that does not win.  With
``staleness_baseline_rows > 0`` in its policy, the learner watches each champion's labelled rows:

- the **baseline** is the error rate on the first ``baseline_rows`` rows the champion version
  served itself (its own, not its predecessor's: the question is "has *this* model got worse
  since it started serving?");
- after them, a one-sided CUSUM on the 0/1 errors, ``S = max(0, S + error - p0 - allowance)``,
  from the row after the last update attempt; it **fires** when ``S > threshold``.

With the defaults (``allowance`` 0.05, ``threshold`` 5) a rise of the error rate by 0.10 fires
after about 100 rows; a stationary model with p0 = 0.2 fires about once per 3,000-5,000 rows
(a gated attempt each time).  Classification only: a regressor's errors have no rate.

>>> import numpy as np
>>> check = StalenessCheck(baseline_rows=100, allowance=0.05, threshold=5.0)
>>> rng = np.random.default_rng(7)
>>> errors = np.r_[rng.random(500) < 0.1, rng.random(400) < 0.4]  # worse from row 500
>>> check.baseline(errors)
0.11
>>> fired = check.first_crossing(errors[100:], check.baseline(errors))
>>> fired   # rows after the baseline: the rise came after 400 of them
423
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from contracts.events import normalise_label


@dataclass(frozen=True)
class StalenessCheck:
    baseline_rows: int = 200
    allowance: float = 0.05
    threshold: float = 5.0

    def __post_init__(self) -> None:
        if self.baseline_rows < 20:
            raise ValueError("staleness_baseline_rows must be 0 (off) or at least 20")
        if not (0 < self.allowance < 1) or not (self.threshold > 0):
            raise ValueError("staleness_allowance must be in (0, 1), staleness_threshold > 0")

    def baseline(self, errors: np.ndarray) -> float | None:
        """The error rate of the first ``baseline_rows`` errors, or None while there are fewer."""
        if len(errors) < self.baseline_rows:
            return None
        return float(np.mean(errors[: self.baseline_rows]))

    def first_crossing(self, errors: np.ndarray, p0: float) -> int | None:
        """The number of errors after which the CUSUM first exceeds the threshold, or None.

        >>> StalenessCheck(20, 0.05, 1.0).first_crossing(np.array([1, 1, 0, 1]), 0.2)
        2
        """
        if not len(errors):
            return None
        steps = np.asarray(errors, dtype=np.float64) - p0 - self.allowance
        sums = np.cumsum(steps)
        # S_t = C_t - min(0, min_{j <= t} C_j): the recursion max(0, S + x) in closed form
        statistic = sums - np.minimum(np.minimum.accumulate(sums), 0.0)
        above = np.nonzero(statistic > self.threshold)[0]
        return int(above[0]) + 1 if len(above) else None


@dataclass(frozen=True)
class Staleness:
    """What the check found on a champion's rows (:func:`assess`)."""

    fired: bool
    baseline: float  # the champion's error rate on its first rows
    baseline_until: float  # the label time of the last of them
    recent: float  # its error rate on the rows the CUSUM read
    rows: int  # rows the CUSUM read
    label_time: float  # the label time of the row at which it fired (or of the newest row)


def assess(
    check: StalenessCheck,
    rows: list[dict],
    version: str,
    after: float = -math.inf,
    known: tuple[float, float] | None = None,
) -> Staleness | None:
    """``rows``: labelled rows as the worker writes them (any order); only those the champion
    ``version`` served count.  The CUSUM reads those labelled after ``after`` (the last update
    attempt's newest row) that are not in the baseline.  ``known``: the baseline and its last
    label time from an earlier call (the worker keeps a capped list of rows: a long-serving
    version's first rows leave it).  None when there is no baseline yet.

    >>> rows = [{"model_version": "v2", "prediction": 1, "label": 1 if i % 10 else 0,
    ...          "label_time": float(i)} for i in range(300)]
    >>> rows += [{"model_version": "v2", "prediction": 1, "label": 0, "label_time": 300.0 + i}
    ...          for i in range(50)]
    >>> found = assess(StalenessCheck(baseline_rows=200), rows, "v2")
    >>> found.fired, found.baseline, found.label_time
    (True, 0.1, 305.0)
    """
    return assess_outcomes(check, [outcome(r) for r in rows], version, after, known)


def outcome(row: dict) -> Outcome | None:
    """What the check reads of one labelled row: the version that served it, whether it was
    wrong, its label time (None for a row without a label time).

    >>> outcome({"model_version": "v1", "prediction": 1, "label": 1.0, "label_time": 3})
    ('v1', 0.0, 3.0)
    """
    if "label_time" not in row:
        return None
    wrong = normalise_label(row.get("prediction")) != normalise_label(row.get("label"))
    return (row.get("model_version"), float(wrong), float(row["label_time"]))


Outcome = tuple[str | None, float, float]


def assess_outcomes(
    check: StalenessCheck,
    outcomes: list[Outcome | None],
    version: str,
    after: float = -math.inf,
    known: tuple[float, float] | None = None,
) -> Staleness | None:
    """:func:`assess` on the rows' :func:`outcome` (what the learner caches per row)."""
    served = [o for o in outcomes if o is not None and o[0] == version]
    table = np.array([o[1:] for o in served], dtype=np.float64).reshape(len(served), 2)
    order = np.argsort(table[:, 1], kind="stable")
    errors, times = table[order, 0], table[order, 1]
    if known is None:
        p0 = check.baseline(errors)
        if p0 is None:
            return None
        until = float(times[check.baseline_rows - 1])
    else:
        p0, until = known
    reads = times > max(after, until)
    later, times = errors[reads], times[reads]
    fired = check.first_crossing(later, p0)
    if fired is None:
        newest = float(times[-1]) if len(times) else until
        recent = float(later.mean()) if len(later) else p0
        return Staleness(False, p0, until, recent, len(later), newest)
    return Staleness(True, p0, until, float(later[:fired].mean()), fired, float(times[fired - 1]))
