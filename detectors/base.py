"""The detector protocol every driftline detector implements.

The contract is river's (``update(x)`` then read ``drift_detected``) so river users can swap
driftline detectors in unchanged, plus what a streaming engine needs on top:

- ``update_many(values)`` for numpy batches, identical to one-by-one updates;
- ``result``: a :class:`DriftResult` (statistic, threshold, index, parameters);
- ``reset()``;
- ``get_state()`` / ``from_state()``: versioned JSON checkpoints, never pickle.

Non-finite inputs (NaN, +/-inf) are ignored: they change no state and are counted in
``n_rejected``.  The stream workers dead-letter such events before they reach a detector;
the rule here keeps a detector sound when it is used on its own.

Subclasses store each hyperparameter under its own name in ``__init__`` (``threshold_`` for
``threshold``, which is also the protocol's property), validate it, then call
``super().__init__()``, which creates all changing state through ``_reset()``.
"""

from __future__ import annotations

import abc
import functools
import inspect
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Self

import numpy as np

from detectors.result import DriftResult
from detectors.state import (
    decode_state,
    decode_value,
    encode_state,
    encode_value,
    state_envelope,
)

REGISTRY: dict[str, type[DriftDetector]] = {}


class DriftDetector(abc.ABC):
    """Base class: one stream of numbers in, alarms out."""

    name: ClassVar[str]
    state_version: ClassVar[int] = 1
    #: What ``update`` takes: ``"real"`` (a number), ``"binary"`` (0/1 error indicators; non-zero
    #: counts as 1), ``"vector"`` (a row of features), ``"category"`` (a label such as a
    #: predicted class), ``"scored"`` (a ``(confidence, correct-or-None)`` pair), ``"latency"``
    #: (milliseconds, >= 0) or ``"event_time"`` (seconds).  The conformance suite picks its
    #: test streams by it.
    input_kind: ClassVar[str] = "real"
    #: Attributes that make up the changing state, when they are plain JSON values; a detector
    #: that lists them gets ``_get_state``/``_set_state`` for free.
    _state_fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not inspect.isabstract(cls):
            if cls.name in REGISTRY:
                raise TypeError(f"detector name {cls.name!r} is already registered")
            REGISTRY[cls.name] = cls

    def __init__(self) -> None:
        self.reset()

    # -- the protocol -------------------------------------------------------------------------
    @property
    def drift_detected(self) -> bool:
        """True when the latest update raised an alarm."""
        return self._drift_detected

    @property
    def result(self) -> DriftResult:
        """The latest conclusion, with the statistic and threshold behind it."""
        return DriftResult(
            is_drift=self._drift_detected,
            index=self.n_seen,
            statistic=float(self.statistic),
            threshold=float(self.threshold),
            detector=self.reports_as,
            params=self.params,
        )

    @property
    def reports_as(self) -> str:
        """The detector name results carry (a wrapper reports the detector it wraps)."""
        return self.name

    def update(self, x: Any) -> None:
        """Feed one value; afterwards ``drift_detected`` says whether it raised an alarm."""
        value = self._accept(x)
        if value is None:
            self.n_rejected += 1
            self._drift_detected = False
            return
        self.n_seen += 1
        self._drift_detected = bool(self._update(value))
        if self._drift_detected:
            self.n_detections += 1

    def update_many(self, values: Iterable[Any] | np.ndarray) -> np.ndarray:
        """Feed a batch; return the 0-based positions in the batch that raised an alarm.

        Equivalent to calling :meth:`update` on each value in order.
        """
        if type(self)._accept is DriftDetector._accept:  # plain numbers: a tighter loop
            return self._update_numbers(np.asarray(values, dtype=np.float64).ravel())
        if type(self).update_until_alarm is not DriftDetector.update_until_alarm:
            return self._update_in_runs(self._batch(values))  # its vectorised path
        alarms = []
        for i, x in enumerate(self._batch(values)):
            self.update(x)
            if self._drift_detected:
                alarms.append(i)
        return np.asarray(alarms, dtype=np.int64)

    def _update_in_runs(self, items: Sequence[Any] | np.ndarray) -> np.ndarray:
        """:meth:`update_many` through :meth:`update_until_alarm`, one run to each alarm."""
        alarms, start = [], 0
        while start < len(items):
            used = self.update_until_alarm(items[start:])
            if used <= 0:
                raise RuntimeError(f"{type(self).__name__}.update_until_alarm consumed nothing")
            start += used
            if self._drift_detected:
                alarms.append(start - 1)
        return np.asarray(alarms, dtype=np.int64)

    def update_until_alarm(self, values: Sequence[Any] | np.ndarray) -> int:
        """Feed ``values`` in order and stop right after the first one that raises an alarm.

        Returns how many values were consumed: all of them when none raised an alarm.  When one
        did, ``drift_detected`` is True and ``result`` (and any detector-specific report) still
        describe that alarm, so a caller can feed a batch and miss none of what the one-by-one
        path would have seen.  Detectors with a vectorised path override this.

        >>> from detectors import PageHinkley
        >>> detector = PageHinkley(threshold=5, min_instances=5)
        >>> stream = [0.0] * 50 + [10.0] * 50
        >>> consumed = detector.update_until_alarm(stream)
        >>> consumed < 100, detector.drift_detected, detector.result.index == consumed
        (True, True, True)
        """
        update = self.update
        for i, x in enumerate(self._batch(values)):
            update(x)
            if self._drift_detected:
                return i + 1
        return len(values)

    @classmethod
    def update_columns_if_quiet(cls, detectors: Sequence[Self], columns: np.ndarray) -> np.ndarray:
        """Column ``j`` of ``columns`` (a row per value) into ``detectors[j]``, all at once,
        for each detector that takes its whole column without an alarm.

        Returns a boolean mask of the detectors that took their column: each is then exactly as
        if ``update_until_alarm`` had run on it.  The others are untouched, for the caller to
        feed as usual.  A class that can vectorise *across* detectors (many features, one
        detector each) overrides this; the default takes none.

        >>> from detectors import PageHinkley
        >>> PageHinkley.update_columns_if_quiet([PageHinkley()], np.zeros((3, 1))).tolist()
        [False]
        """
        return np.zeros(len(detectors), dtype=bool)

    @classmethod
    def learn_columns(cls, detectors: Sequence[Self], columns: np.ndarray) -> None:
        """``update_many`` of column ``j`` into ``detectors[j]``, for detectors that are learning
        their references (no alarm is due).  A class that calibrates at the end of learning
        may calibrate the detectors whose references a column completes together; the states
        are the same either way.  The default feeds each detector alone.

        >>> from detectors import PageHinkley
        >>> learners = [PageHinkley(), PageHinkley()]
        >>> PageHinkley.learn_columns(learners, np.zeros((3, 2)))
        >>> [d.n_seen for d in learners]
        [3, 3]
        """
        for j, detector in enumerate(detectors):
            detector.update_many(columns[:, j])

    def _update_numbers(self, values: np.ndarray) -> np.ndarray:
        """``update`` on each number, with the finiteness test done once by numpy and the
        values as Python floats (cheaper to compute with than numpy scalars)."""
        alarms = []
        update = self._update
        finite = np.isfinite(values).tolist()
        for i, (x, ok) in enumerate(zip(values.tolist(), finite, strict=True)):
            if not ok:
                self.n_rejected += 1
                self._drift_detected = False
                continue
            self.n_seen += 1
            self._drift_detected = detected = bool(update(x))
            if detected:
                self.n_detections += 1
                alarms.append(i)
        return np.asarray(alarms, dtype=np.int64)

    # -- input handling (overridden by detectors that read rows, categories, pairs) ----------
    def _accept(self, x: Any) -> Any | None:
        """The value ``_update`` will see, or None to reject it (counted in ``n_rejected``)."""
        try:
            value = float(x)
        except (TypeError, ValueError):
            return None
        return value if math.isfinite(value) else None

    def _batch(self, values: Iterable[Any] | np.ndarray) -> Iterable[Any]:
        """The items of a batch, in order."""
        return np.asarray(values, dtype=np.float64).ravel()

    def reset(self) -> None:
        """Forget everything seen; keep the hyperparameters."""
        self.n_seen = 0
        self.n_rejected = 0
        self.n_detections = 0
        self._drift_detected = False
        self._reset()

    @property
    def params(self) -> dict[str, Any]:
        """The constructor's arguments, read back from the attributes of the same names.

        A hyperparameter whose name is also a protocol property (``threshold``) is stored with a
        trailing underscore (``threshold_``) and read from there.
        """
        return {
            n: getattr(self, f"{n}_") if hasattr(self, f"{n}_") else getattr(self, n)
            for n in _init_parameters(type(self))
        }

    def get_state(self) -> bytes:
        """A versioned JSON checkpoint of parameters and state."""
        return encode_state(self.state_document())

    def state_document(self) -> dict[str, Any]:
        """:meth:`get_state`'s checkpoint as JSON-ready data, for a caller that nests it in a
        larger document (a model's checkpoint) and writes that at once: it may share lists
        with the detector, so write it (or copy it) before the detector changes again."""
        common = {
            "n_seen": self.n_seen,
            "n_rejected": self.n_rejected,
            "n_detections": self.n_detections,
            "drift_detected": self._drift_detected,
        }
        return state_envelope(
            self.name, self.state_version, self.params, common | self._get_state()
        )

    @classmethod
    def from_state(cls, blob: bytes | str) -> Self:
        """Rebuild a detector from :meth:`get_state`'s bytes; it continues exactly where it was."""
        params, state = decode_state(blob, cls.name, cls.state_version)
        detector = cls(**params)
        detector.n_seen = int(state["n_seen"])
        detector.n_rejected = int(state["n_rejected"])
        detector.n_detections = int(state["n_detections"])
        detector._drift_detected = bool(state["drift_detected"])
        detector._set_state(state)
        return detector

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    # -- what each detector supplies ---------------------------------------------------------
    @abc.abstractmethod
    def _reset(self) -> None:
        """Create every piece of changing state."""

    @abc.abstractmethod
    def _update(self, x: float) -> bool:
        """Consume one finite value; return True on an alarm."""

    @property
    @abc.abstractmethod
    def statistic(self) -> float:
        """The current test statistic."""

    @property
    @abc.abstractmethod
    def threshold(self) -> float:
        """The level the statistic must exceed to raise an alarm."""

    def _get_state(self) -> dict[str, Any]:
        """JSON-ready changing state: by default the attributes named in ``_state_fields``,
        with float arrays and lists of float rows packed (exact, and compact), and a detector
        held inside as its own checkpoint."""
        if not self._state_fields:
            raise NotImplementedError(f"{type(self).__name__} must define its checkpoint")
        state = {}
        for f in self._state_fields:
            value = getattr(self, f)
            if isinstance(value, DriftDetector):  # a detector inside: its own checkpoint
                value = value.state_document()
            state[f.lstrip("_")] = encode_value(value)
        return state

    def _set_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`_get_state` (an attribute that is an array, or a detector, after
        reset is read back as one of the same kind)."""
        for f in self._state_fields:
            current, value = getattr(self, f, None), state[f.lstrip("_")]
            if isinstance(current, DriftDetector):
                setattr(self, f, type(current).from_state(json.dumps(value)))
            else:
                setattr(self, f, decode_value(value, current))

    @classmethod
    def _unit_test_params(cls) -> dict[str, Any]:
        """Parameters the conformance suite uses besides the defaults (override to add)."""
        return {}


class WarningLevel:
    """Mixin for detectors that also raise warnings below the alarm level (river's
    ``BinaryDriftAndWarningDetector``); they keep the latest warning in ``_warning``."""

    _warning: bool

    @property
    def warning_detected(self) -> bool:
        """True when the latest update crossed the warning level (but not the alarm level)."""
        return self._warning


def update_columns_by_class(detectors: Sequence[DriftDetector], columns: np.ndarray) -> np.ndarray:
    """:meth:`DriftDetector.update_columns_if_quiet` over detectors of any classes: each class
    takes the columns of its own detectors.  Returns which detectors took their column.

    >>> from detectors import CUSUM, PageHinkley
    >>> mixed = [CUSUM(reference_size=64), PageHinkley()]
    >>> _ = mixed[0].update_many(np.random.default_rng(0).normal(size=100))
    >>> update_columns_by_class(mixed, np.zeros((5, 2))).tolist()
    [True, False]
    """
    taken = np.zeros(len(detectors), dtype=bool)
    for kind, chosen in _by_class(detectors).items():
        took = kind.update_columns_if_quiet([detectors[j] for j in chosen], columns[:, chosen])
        taken[[j for j, ok in zip(chosen, took.tolist(), strict=True) if ok]] = True
    return taken


def learn_columns_by_class(learners: Sequence[DriftDetector], columns: np.ndarray) -> None:
    """:meth:`DriftDetector.learn_columns` over learners of any classes: column ``j`` into
    ``learners[j]``, each class's learners in one call."""
    for kind, members in _by_class(learners).items():
        kind.learn_columns([learners[j] for j in members], columns[:, members])


def _by_class(detectors: Sequence[DriftDetector]) -> dict[type[DriftDetector], list[int]]:
    """The positions of the detectors of each class, in order."""
    groups: dict[type[DriftDetector], list[int]] = {}
    for j, detector in enumerate(detectors):
        groups.setdefault(type(detector), []).append(j)
    return groups


@functools.cache
def _init_parameters(cls: type) -> tuple[str, ...]:
    """The constructor's parameter names (read once per class: a signature costs ~30 us, and
    every checkpoint asks each detector for its parameters)."""
    return tuple(p for p in inspect.signature(cls.__init__).parameters if p != "self")


def detector_from_state(blob: bytes | str) -> DriftDetector:
    """Restore any registered detector from its checkpoint, whatever its class.

    >>> from detectors import PageHinkley
    >>> restored = detector_from_state(PageHinkley(threshold=20).get_state())
    >>> restored
    PageHinkley(min_instances=30, delta=0.005, threshold=20, alpha=0.9999, mode='both')
    """
    import json

    name = json.loads(blob).get("detector")
    if name not in REGISTRY:
        from detectors.state import StateError

        raise StateError(f"unknown detector {name!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[name].from_state(blob)
