"""A rolling reference around any detector: follow slow cycles, still catch sudden changes.

A detector that learnt "normal" from its first values pages when a feature with a daily or
weekly cycle (traffic, time of day) moves along its cycle.  :class:`RollingReference` re-learns
the reference every ``every`` values while the stream is quiet: a fresh copy of the detector
(the *shadow*) learns from the live values beside the serving one and takes over the moment it
is calibrated, so the stream is never unwatched.  A numeric CUSUM taking over keeps at least
the long-run spread of the one it replaces (``keep_spread_of``): a cycle moves the level, and
a narrower spread from one noisy window must not make it page sooner.

What that buys and what it costs (measured in ``docs/detection-benchmark.md``):

- a cycle moves little between refreshes (at 100 events/s, 50,000 values are 8 minutes, in
  which a daily cycle of +/-3 sd moves at most 0.11 sd), so it is followed, not paged;
- a sudden change is caught as before, within one reference period;
- a drift slower than the refresh is followed too, so the detector does not report it.  The
  stream worker therefore rolls the *input* signals only; the model's own signals (error rate,
  score, estimated accuracy) keep their baselines and see what slow input drift does to it.

An alarm drops the shadow (it would have learnt from drifted values); the serving detector
re-learns by itself after an alarm, as always.  Everything is counted in values, not time, so
batches and one-by-one updates agree exactly (the conformance suite holds it to that).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors.base import (
    REGISTRY,
    DriftDetector,
    detector_from_state,
    learn_columns_by_class,
    update_columns_by_class,
)


class RollingReference(DriftDetector):
    """``detector`` (a registry name, built with ``params``), its reference re-learnt every
    ``every`` values since the serving reference took over.  Reports as the detector it wraps;
    its attributes (``fired``, ``baseline``, ``calibrated``, ...) are the serving detector's.

    Parameters:
        detector: Registry name of the wrapped detector.
        params: Its constructor parameters.
        every: Values between the serving reference taking over and the next re-learning.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> creep = rng.normal(size=500_000) + np.arange(500_000) * 2e-6  # +1 sd, slowly
        >>> fixed = REGISTRY["cusum"]()
        >>> rolling = RollingReference("cusum", {}, every=10_000)
        >>> len(fixed.update_many(creep)), len(rolling.update_many(creep))  # fixed: 11 pages
        (11, 1)
        >>> jump = np.r_[rng.normal(size=2_000), rng.normal(3, 1, size=100)]
        >>> rolling.update_many(jump).size > 0, rolling.result.detector  # a jump still does
        (True, 'cusum')
    """

    name = "rolling"

    def __init__(
        self, detector: str = "cusum", params: dict[str, Any] | None = None, every: int = 50_000
    ) -> None:
        if detector not in REGISTRY or detector == self.name:
            raise ValueError(f"unknown detector {detector!r} to roll")
        if every < 1:
            raise ValueError("every must be >= 1")
        self.detector = detector
        # a JSON round trip, so parameters read back from a checkpoint compare equal
        self.params_ = json.loads(json.dumps(params or {}))
        self.every = every
        REGISTRY[detector](**self.params_)  # validates the parameters now
        super().__init__()

    @property
    def params(self) -> dict[str, Any]:
        return {"detector": self.detector, "params": self.params_, "every": self.every}

    def _make(self) -> DriftDetector:
        return REGISTRY[self.detector](**self.params_)

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("_inner")
        if inner is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(inner, name)

    # -- the protocol --------------------------------------------------------------------------
    @property
    def statistic(self) -> float:
        return self._inner.statistic

    @property
    def threshold(self) -> float:
        return self._inner.threshold

    @property
    def calibrated(self) -> bool:
        return bool(getattr(self._inner, "calibrated", True))

    @property
    def reports_as(self) -> str:
        """Alarms name the detector that fired (``cusum``), not the wrapper."""
        return self.detector

    def _reset(self) -> None:
        self._inner = self._make()
        self._shadow: DriftDetector | None = None
        self._served = 0  # values since the serving reference took over
        self.refreshes = 0

    def _update(self, x: float) -> bool:  # pragma: no cover - update() is overridden
        raise NotImplementedError

    def update(self, x: Any) -> None:
        inner = self._inner
        rejected = inner.n_rejected
        inner.update(x)
        if inner.n_rejected > rejected:
            self.n_rejected += 1
            self._drift_detected = False
            return
        self.n_seen += 1
        if inner.drift_detected:
            self._alarm()
            return
        self._drift_detected = False
        if not getattr(inner, "calibrated", True):
            self._served = 0
        elif self._shadow is not None:
            self._shadow.update(x)
            if getattr(self._shadow, "calibrated", True):
                self._hand_over()
        else:
            self._served += 1
            if self._served >= self.every:
                self._shadow = self._make()  # learns from the next value on

    def _alarm(self) -> None:
        self._shadow, self._served = None, 0
        self._drift_detected = True
        self.n_detections += 1

    def update_many(self, values: Any) -> np.ndarray:
        return self._update_in_runs(self._inner._batch(values))

    def update_until_alarm(self, values: Any) -> int:
        """Vectorised while the serving detector is settled and no refresh is due; one by one
        while it (or a shadow) is learning."""
        items = self._inner._batch(values)
        n, i = len(items), 0
        while i < n:
            inner = self._inner
            learning = self._shadow is not None or not self.calibrated
            if learning and not self._drift_detected:
                # The values the learner's reference needs go in one block; if they complete
                # it, the hand-over happens after them (:meth:`_learn`), as one by one.
                learner = self._shadow if self._shadow is not None else inner
                ahead = getattr(learner, "values_to_calibrate", lambda: 0)()
                if ahead > 0:
                    i += self._learn(items[i : i + ahead])
                    if self._drift_detected:
                        return i
                    continue
            if learning or self._drift_detected:
                self.update(items[i])
                i += 1
                if self._drift_detected:
                    return i
                continue
            chunk = items[i : i + self.every - self._served]
            rejected = inner.n_rejected
            used = inner.update_until_alarm(chunk)
            accepted = self._count(used, rejected)
            i += used
            if inner.drift_detected:
                self._alarm()
                return i
            self._drift_detected = False
            self._served += accepted
            if self._served >= self.every:
                self._shadow = self._make()
        return n

    @classmethod
    def update_columns_if_quiet(
        cls, detectors: Sequence[RollingReference], columns: np.ndarray
    ) -> np.ndarray:
        """The serving detectors advance together (their class's ``update_columns_if_quiet``)
        where no alarm is due and the column ends at or before the next hand-over: a refresh
        due (a shadow starts after the column), or a reference completing (at the column's
        last value at the latest: a shadow takes over after it, a first reference serves from
        it, as one by one).  Detectors learning a reference learn their columns together
        (their class's ``learn_columns``: CUSUMs whose references complete in the block are
        calibrated in one call).  A caller that cuts its blocks at
        :meth:`values_to_hand_over` keeps every column on this path."""
        n = len(columns)
        taken = np.zeros(len(detectors), dtype=bool)
        chosen, first = [], []
        for j, d in enumerate(detectors):
            if not d._drift_detected and n <= d.values_to_hand_over():
                (chosen if d.calibrated else first).append(j)
        rejected = [detectors[j]._inner.n_rejected for j in first]
        learn_columns_by_class([detectors[j]._inner for j in first], columns[:, first])
        for j, before in zip(first, rejected, strict=True):
            d = detectors[j]
            d._count(n, before)
            d._drift_detected = False
            d._first_learnt()
            taken[j] = True
        inners = [detectors[j]._inner for j in chosen]
        rejected = [inner.n_rejected for inner in inners]
        took = update_columns_by_class(inners, columns[:, chosen])
        learning: list[int] = []
        for k in np.flatnonzero(took):
            j = chosen[k]
            d = detectors[j]
            accepted = d._count(n, rejected[k])
            d._drift_detected = False
            if d._shadow is not None:
                learning.append(j)
            else:
                d._served += accepted
                if d._served >= d.every:
                    d._shadow = d._make()
            taken[j] = True
        learn_columns_by_class([detectors[j]._shadow for j in learning], columns[:, learning])
        for j in learning:
            d = detectors[j]
            if getattr(d._shadow, "calibrated", True):  # completed at the column's last value
                d._hand_over()
        return taken

    def values_to_hand_over(self) -> int:
        """Values (if none raises an alarm) until the serving reference changes hands: a
        refresh starting a shadow after them, or a reference (a shadow's, or the first one)
        completing with them (at least that many: it may need more).  0 for an inner detector
        that does not say what its reference needs.

        >>> d = RollingReference("cusum", {"reference_size": 64}, every=500)
        >>> _ = d.update_many(np.arange(64) % 3)
        >>> d.values_to_hand_over()  # serving (the value completing the reference was its first)
        499
        >>> _ = d.update_many(np.arange(499) % 3)
        >>> d.values_to_hand_over()  # the shadow's reference needs 64
        64
        """
        if not self.calibrated:
            return getattr(self._inner, "values_to_calibrate", lambda: 0)()
        if self._shadow is None:
            return self.every - self._served
        return getattr(self._shadow, "values_to_calibrate", lambda: 0)()

    def _count(self, used: int, rejected_before: int) -> int:
        """Count ``used`` values the serving detector took, those it rejected beyond
        ``rejected_before`` as rejected; returns how many it accepted."""
        accepted = used - (self._inner.n_rejected - rejected_before)
        self.n_seen += accepted
        self.n_rejected += used - accepted
        return accepted

    def _hand_over(self) -> None:
        """The calibrated shadow serves from the next value on."""
        keep = getattr(self._shadow, "keep_spread_of", None)
        if keep is not None:
            keep(self._inner)
        self._inner, self._shadow, self._served = self._shadow, None, 0
        self.refreshes += 1

    def _learn(self, block: Any) -> int:
        """``update`` on each value of a block in which no reference can be completed before
        its last value (a shadow completing at the last value takes over after it)."""
        inner = self._inner
        rejected = inner.n_rejected
        used = inner.update_until_alarm(block)
        self._count(used, rejected)
        if inner.drift_detected:
            self._alarm()
            return used
        self._drift_detected = False
        if self._shadow is not None:
            self._shadow.update_many(block[:used])
            if getattr(self._shadow, "calibrated", True):  # completed at the block's end
                self._hand_over()
        else:
            self._first_learnt()
        return used

    def _first_learnt(self) -> None:
        """After values that went to the first reference: if its last one completed it, that
        value was the first served (as :meth:`update` counts it)."""
        self._served = 0
        if getattr(self._inner, "calibrated", True):
            self._served = 1
            if self._served >= self.every:
                self._shadow = self._make()

    # -- checkpoints ---------------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        shadow = None if self._shadow is None else self._shadow.state_document()
        return {
            "inner": self._inner.state_document(),
            "shadow": shadow,
            "served": self._served,
            "refreshes": self.refreshes,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self._inner = detector_from_state(json.dumps(state["inner"]))
        shadow = state["shadow"]
        self._shadow = None if shadow is None else detector_from_state(json.dumps(shadow))
        self._served = int(state["served"])
        self.refreshes = int(state["refreshes"])

    @classmethod
    def _unit_test_params(cls) -> dict[str, Any]:
        return {
            "detector": "cusum",
            "params": {"shifts": [1.0], "target_arl": 10_000.0, "reference_size": 200},
            "every": 700,
        }
