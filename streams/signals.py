"""Signals: the detectors on one number stream; and the model-output signals of each version.

:class:`Signal` holds the detectors on one stream (a feature, the error rate, ...) with the
alarm cooldown.  :class:`VersionSignals` holds the signals that describe a *model's* outputs
(score, error, predicted class, low confidence, estimated accuracy) for one model version.

Version-aware baselines: every version gets its own :class:`VersionSignals`, so canary or
staggered traffic that alternates versions never resets anything.  A version seen for the first
time starts from its predecessor's *baseline*: the detector state captured when the predecessor
finished learning its reference on healthy traffic.  A new version is therefore judged against
the old one at its best; a worse model raises an alarm instead of quietly becoming the baseline.

>>> from detectors import CUSUM
>>> old = VersionSignals("v1", lambda: {"cusum": CUSUM(reference_size=64)})
>>> for i in range(70):
...     old.error.detectors["cusum"].update(float(i % 7 == 0))
>>> old.capture_baselines()
>>> new = VersionSignals("v2", lambda: {"cusum": CUSUM(reference_size=64)}, predecessor=old)
>>> new.error.detectors["cusum"].calibrated        # no warm-up: it starts from v1's reference
True
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from detectors import DriftDetector, StateError, detector_from_state
from detectors.base import update_columns_by_class
from detectors.rolling import RollingReference

log = logging.getLogger(__name__)
T = TypeVar("T")


class Signal:
    """The detectors on one number stream, with alarm cooldown."""

    __slots__ = ("baseline", "cooldown_left", "detectors", "kind", "name")

    def __init__(self, kind: str, name: str, detectors: dict[str, DriftDetector]) -> None:
        self.kind, self.name, self.detectors = kind, name, detectors
        self.cooldown_left = 0
        # the detectors' state when first calibrated (see above), as JSON text: kept for the
        # version's life and read only when a successor starts, so it is kept small (a dict of
        # the states took 4 KB a signal, the text under 1)
        self.baseline: str | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def calibrated(self) -> bool:
        return all(getattr(d, "calibrated", True) for d in self.detectors.values())

    def reset(self) -> None:
        for d in self.detectors.values():
            d.reset()
        self.cooldown_left = 0

    def feed(self, value: Any, cooldown: int) -> list[DriftDetector]:
        """One value into every detector; the detectors whose alarm is due (not held back by
        the cooldown, which restarts after an alarm).  Read each one's ``result`` now."""
        if self.cooldown_left:
            self.cooldown_left -= 1
        due = []
        for detector in self.detectors.values():
            detector.update(value)
            if detector.drift_detected and not self.cooldown_left:
                due.append(detector)
        if due:
            self.cooldown_left = cooldown
        return due

    def feed_many(
        self, values: Sequence[Any], cooldown: int, describe: Callable[[int, DriftDetector], T]
    ) -> list[tuple[int, T]]:
        """:meth:`feed` on each value in order, vectorised per detector.

        Returns ``(position, describe(position, detector))`` for every alarm that is due, in
        the order the one-by-one path raises them.  ``describe`` runs while the detector still
        shows that alarm's result.  Detectors never see the cooldown, so each runs over the
        whole batch on its own; the cooldown is then applied to their alarms in order."""
        n = len(values)
        raised: list[tuple[int, int, T]] = []
        for rank, detector in enumerate(self.detectors.values()):
            start = 0
            while start < n:
                start += detector.update_until_alarm(values[start:])
                if detector.drift_detected:
                    raised.append((start - 1, rank, describe(start - 1, detector)))
        raised.sort(key=lambda hit: hit[:2])
        left, last, emitted_at, due = self.cooldown_left, -1, -1, []
        for position, _, described in raised:
            if position != last:  # the updates in between each took one off the cooldown
                left = max(0, left - (position - last))
                last = position
            if left == 0 or emitted_at == position:  # due, or beside one due at this value
                due.append((position, described))
                emitted_at, left = position, cooldown
        self.cooldown_left = max(0, left - (n - 1 - last))
        return due

    def checkpoint(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "cooldown_left": self.cooldown_left,
            "detectors": {name: d.state_document() for name, d in self.detectors.items()},
        }
        if self.baseline is not None:
            doc["baseline"] = json.loads(self.baseline)
        return doc

    def restore(self, saved: dict[str, Any]) -> None:
        """Resume each detector whose checkpoint was written with the same parameters."""
        self.cooldown_left = int(saved.get("cooldown_left", 0))
        baseline = saved.get("baseline")
        self.baseline = None if baseline is None else _compact(baseline)
        for name, state in saved.get("detectors", {}).items():
            current = self.detectors.get(name)
            if current is None:
                continue
            try:
                restored = detector_from_state(json.dumps(state))
            except StateError as exc:
                log.warning("discarding checkpoint of %s/%s: %s", self.key, name, exc)
                continue
            if restored.params != current.params:
                log.warning("discarding checkpoint of %s/%s: parameters changed", self.key, name)
                continue
            self.detectors[name] = restored


def _compact(states: dict[str, Any]) -> str:
    """Detector states as JSON text (the standard library's: states hold inf and NaN)."""
    return json.dumps(states, separators=(",", ":"))


def feed_columns_if_quiet(signals: Sequence[Signal], columns: np.ndarray) -> np.ndarray:
    """:meth:`Signal.feed_many` of column ``j`` into ``signals[j]``, vectorised *across* the
    signals, for each signal with one detector whose column raises no alarm (the detector
    class's ``update_columns_if_quiet``).  Returns which signals took their column; the others
    are untouched, for :meth:`Signal.feed_many`.

    >>> from detectors import CUSUM
    >>> signals = [Signal("feature", f"x{j}", {"cusum": CUSUM(reference_size=64)}) for j in range(3)]
    >>> rng = np.random.default_rng(2)
    >>> for j, s in enumerate(signals):
    ...     _ = s.feed_many(rng.normal(size=100), 0, lambda i, d: d)
    >>> feed_columns_if_quiet(signals, rng.normal(size=(20, 3))).tolist()
    [True, True, True]
    >>> signals[0].detectors["cusum"].n_seen
    120
    """
    n = len(columns)
    taken = np.zeros(len(signals), dtype=bool)
    single = [j for j, signal in enumerate(signals) if len(signal.detectors) == 1]
    detectors = [next(iter(signals[j].detectors.values())) for j in single]
    for k in np.flatnonzero(update_columns_by_class(detectors, columns[:, single])):
        signal = signals[single[k]]
        signal.cooldown_left = max(0, signal.cooldown_left - n)  # n updates, no alarm
        taken[single[k]] = True
    return taken


def values_to_hand_over(signals: Sequence[Signal]) -> int:
    """Values until the first of these signals' rolling references changes hands (a refresh
    starts, a re-learnt or a first reference completes: ``RollingReference.values_to_hand_over``):
    a block cut there stays on the together path (:func:`feed_columns_if_quiet`) instead of
    each signal going alone.  A very large number where none will.

    >>> signal = Signal("feature", "x", {"cusum": RollingReference("cusum", {}, every=500)})
    >>> _ = signal.feed_many(np.arange(2_000) % 5, 0, lambda i, d: d)
    >>> values_to_hand_over([signal]) == signal.detectors["cusum"].values_to_hand_over()
    True
    """
    ahead = [
        detector.values_to_hand_over()
        for signal in signals
        for detector in signal.detectors.values()
        if isinstance(detector, RollingReference)
    ]
    return max(1, min((a for a in ahead if a > 0), default=_FAR))


_FAR = 1 << 62

Build = Callable[[], dict[str, DriftDetector]]


class VersionSignals:
    """The model-output signals of one model version."""

    __slots__ = (
        "baselines_complete",
        "classes",
        "error",
        "performance",
        "score",
        "uncertain",
        "version",
    )

    def __init__(
        self,
        version: str,
        score: Build,
        error: Build | None = None,
        classes: Build | None = None,
        rates: Build | None = None,
        performance: Build | None = None,
        predecessor: VersionSignals | None = None,
    ) -> None:
        self.version = version
        self.baselines_complete = False  # set once every signal has its baseline (hot path)
        self.score = Signal("score", "score", score())
        self.error = Signal("error", "error", (error or score)())
        self.classes = Signal("output", "predicted_class", (classes or score)())
        self.uncertain = Signal("output", "low_confidence", (rates or score)())
        self.performance = Signal("performance", "estimated_accuracy", (performance or score)())
        if predecessor is not None:
            self.inherit(predecessor)

    def signals(self) -> list[Signal]:
        return [self.score, self.error, self.classes, self.uncertain, self.performance]

    def inherit(self, predecessor: VersionSignals) -> None:
        """Start each signal from the predecessor's baseline (where it has one)."""
        for mine, theirs in zip(self.signals(), predecessor.signals(), strict=True):
            if theirs.baseline is not None:
                mine.restore({"detectors": json.loads(theirs.baseline)})
                mine.baseline = theirs.baseline

    def capture_baselines(self) -> None:
        """Remember each signal's state the first time all its detectors are calibrated."""
        if self.baselines_complete:
            return
        for signal in self.signals():
            if signal.baseline is None and signal.calibrated:
                signal.baseline = _compact(signal.checkpoint()["detectors"])
        self.baselines_complete = all(s.baseline is not None for s in self.signals())

    def checkpoint(self) -> dict[str, Any]:
        return {signal.key: signal.checkpoint() for signal in self.signals()}

    def restore(self, saved: dict[str, Any]) -> None:
        for signal in self.signals():
            if signal.key in saved:
                signal.restore(saved[signal.key])
