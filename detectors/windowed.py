"""Reference-then-windows scaffolding for detectors that test a window against a reference.

A :class:`WindowedTest` learns a reference from its first ``reference_size`` inputs, then
collects tumbling windows of ``window`` inputs and runs one two-sample test per window.  Memory
is fixed by those two sizes.  An alarm means the window differs from the reference; the detector
then learns a new reference from the inputs that follow (the new regime becomes the baseline),
as the CUSUM does.  Subclasses supply the reference summary, the window summary and the test.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np

from detectors.base import DriftDetector


class WindowedTest(DriftDetector):
    """Base for window-versus-reference tests (see the module docstring)."""

    #: Subclasses list their own state attributes here, on top of the scaffolding's.
    _test_fields: ClassVar[tuple[str, ...]] = ()

    #: Set by each subclass's constructor before it calls ``super().__init__()``.
    reference_size: int
    window: int
    alpha: float

    def __init__(self) -> None:
        if self.reference_size < 2 or self.window < 2:
            raise ValueError("reference_size and window must be >= 2")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha (false-alarm probability per window) must be in (0, 1)")
        super().__init__()

    @property
    def _state_fields(self) -> tuple[str, ...]:  # type: ignore[override]
        scaffolding = ("_calibrated", "_n_reference", "_n_window", "_statistic", "_restart_pending")
        return (*scaffolding, *self._test_fields)

    @property
    def statistic(self) -> float:
        """The last window's test statistic (0 before the first window closes)."""
        return self._statistic

    @property
    def calibrated(self) -> bool:
        return self._calibrated

    def values_to_calibrate(self) -> int:
        """At least this many more values before it is calibrated (0: it is)."""
        if self._restart_pending:
            return self.reference_size
        return 0 if self._calibrated else max(1, self._reference_target() - self._n_reference)

    def _reference_target(self) -> int:
        """Values the reference takes: ``reference_size``, or what :meth:`_extended_size`
        decided once it had that many."""
        return self._ref_target or self.reference_size

    def _extended_size(self) -> int:
        """Asked once, when ``reference_size`` values are in: how many the reference should
        take in all (a test whose reference needs more, e.g. on autocorrelated input, says so)."""
        return self.reference_size

    def _reset(self) -> None:
        self._calibrated = False
        self._n_reference = 0
        self._n_window = 0
        self._statistic = 0.0
        self._restart_pending = False
        self._ref_target = 0  # 0: not decided (see _reference_target)
        self._clear_reference()
        self._clear_window()

    def _update(self, x: Any) -> bool:
        if self._restart_pending:
            self._reset()
        if not self._calibrated:
            self._add_reference(x)
            self._n_reference += 1
            if self._n_reference >= self._reference_target():
                if not self._ref_target:
                    self._ref_target = max(self._extended_size(), self._n_reference)
                if self._n_reference >= self._ref_target:
                    self._fit_reference()
                    self._calibrated = True
            return False
        self._add_window(x)
        self._n_window += 1
        if self._n_window < self.window:
            return False
        self._statistic = float(self._test_window())
        self._n_window = 0
        self._clear_window()
        self._restart_pending = self._statistic > self.threshold
        return self._restart_pending

    def update_until_alarm(self, values: Any) -> int:
        """Vectorised: the reference is learnt in blocks (:meth:`_add_reference_many`) up to
        the value before the one that completes it, and each window is filled in one call of
        :meth:`_add_window_many` and tested once, as the one-by-one path does."""
        items = self._batch(values)
        n, i = len(items), 0
        while i < n:
            if self._restart_pending or not self._calibrated:
                room = self._reference_target() - self._n_reference - 1  # the last: one by one
                if self._restart_pending or room < 1 or getattr(self, "_width", 0) is None:
                    self.update(items[i])  # a restart, the first row (its width), the fit
                    i += 1
                    if self._drift_detected:
                        return i
                    continue
                block = items[i : i + room]
                i += len(block)
                accepted = self._accept_many(block)
                self.n_rejected += len(block) - len(accepted)
                self.n_seen += len(accepted)
                self._drift_detected = False
                learnt = self._reference_values(accepted)
                if len(learnt):
                    self._add_reference_many(learnt)
                    self._n_reference += len(learnt)
                continue
            block = items[i : i + self.window - self._n_window]
            i += len(block)
            accepted = self._accept_many(block)
            self.n_rejected += len(block) - len(accepted)
            self.n_seen += len(accepted)
            self._drift_detected = False
            if not len(accepted):
                continue
            self._add_window_many(accepted)
            self._n_window += len(accepted)
            if self._n_window < self.window:
                continue
            self._statistic = float(self._test_window())
            self._n_window = 0
            self._clear_window()
            self._restart_pending = self._drift_detected = self._statistic > self.threshold
            if self._drift_detected:
                self.n_detections += 1
                return i
        return n

    def _accept_many(self, block: Any) -> Any:
        """The accepted values of ``block``, in order (:meth:`_accept` on each, by default)."""
        accept = self._accept
        return [v for v in map(accept, block) if v is not None]

    def _reference_values(self, accepted: Any) -> Any:
        """Of the accepted values, those the reference learns from (a test whose ``_update``
        lets some pass while learning says which here, for the block path)."""
        return accepted

    def _add_reference_many(self, accepted: Any) -> None:
        """:meth:`_add_reference` on each accepted value (override with a vectorised version)."""
        for x in accepted:
            self._add_reference(x)

    def _add_window_many(self, accepted: Any) -> None:
        """:meth:`_add_window` on each accepted value (override with a vectorised version)."""
        for x in accepted:
            self._add_window(x)

    # -- what each test supplies ---------------------------------------------------------------
    @abc.abstractmethod
    def _clear_reference(self) -> None: ...

    @abc.abstractmethod
    def _add_reference(self, x: Any) -> None: ...

    @abc.abstractmethod
    def _fit_reference(self) -> None:
        """Summarise the complete reference (and drop what the summary makes unnecessary)."""

    @abc.abstractmethod
    def _clear_window(self) -> None: ...

    @abc.abstractmethod
    def _add_window(self, x: Any) -> None: ...

    @abc.abstractmethod
    def _test_window(self) -> float:
        """The statistic comparing the full window with the reference."""


class VectorInput:
    """Mixin for detectors fed rows of numbers.

    The first accepted row fixes the width; a row of another width, or with a non-finite or
    non-numeric value, is rejected (counted in ``n_rejected``) and changes nothing.
    """

    input_kind = "vector"
    _width: int | None

    def _accept(self, x: Any) -> np.ndarray | None:
        try:
            row = np.asarray(x, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            return None
        if row.size == 0 or not np.isfinite(row).all():
            return None
        if self._width is None:
            self._width = int(row.size)
        elif row.size != self._width:
            return None
        return row

    def _batch(self, values: Any) -> Any:
        if isinstance(values, np.ndarray):
            return values if values.ndim == 2 else values.reshape(len(values), -1)
        return list(values)

    def _accept_many(self, block: Any) -> Any:
        """Rows of the width seen first whose values are all finite, as one 2-D array."""
        if not isinstance(block, np.ndarray) or block.dtype != np.float64:
            rows = [row for row in map(self._accept, block) if row is not None]
            return np.array(rows) if rows else np.zeros((0, self._width or 0))
        if self._width is None or block.shape[1] != self._width:
            return np.zeros((0, self._width or 0))
        return block[np.isfinite(block).all(axis=1)]
