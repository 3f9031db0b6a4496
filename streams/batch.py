"""The vectorised path of :class:`~streams.monitor.ModelMonitor`: many events of one model at once.

:func:`observe_inferences` gives the same alarms (in the same order), counts, windows and detector
states as :meth:`~streams.monitor.ModelMonitor.observe_inference` on each event in turn
(``tests/unit/test_monitor_batch.py`` holds it to that on binary, multi-class and regression
traffic with drift, canaries and early labels), at a fraction of the cost:

- each signal's values for the whole batch go to its detectors together
  (:meth:`~streams.signals.Signal.feed_many`: one ``update_until_alarm`` call per detector and
  alarm, numpy-vectorised for the CUSUM that watches every feature by default);
- the feature values of events with one layout become one matrix, read column by column;
- the rolling windows take the batch in one pass.

The one-by-one path still runs where the order *across* signals matters, which is rare:

- until the first event has fixed the feature layout;
- while a version's output signals are learning their reference: the baseline a new version
  inherits is the state at the moment a signal finished learning, not at the end of a batch;
- for an inference whose label came first: its outcome is fed right after it, so the batch
  is cut there.

It also runs for fewer than :data:`ONE_BY_ONE` events of a model, where it is the cheaper one
(a worker with many models and single-event messages gets a few events per model and batch).

>>> import random
>>> from contracts.events import InferenceEvent
>>> from streams.monitor import ModelMonitor
>>> rng = random.Random(3)
>>> events = [
...     InferenceEvent("m", "v1", f"r{i}", 1000.0 + i, {"x": rng.gauss(3.0 * (i >= 3000), 1)}, 1,
...                    score=0.9)
...     for i in range(4000)
... ]
>>> one, many = ModelMonitor("m"), ModelMonitor("m")
>>> expected = [a for e in events for a in one.observe_inference(e).alarms]
>>> got = observe_inferences(many, events)
>>> [a.dedup_key for _, a in got.alarms] == [a.dedup_key for a in expected]
True
>>> got.alarms[0][0] == got.alarms[0][1].index - 1  # each alarm with its event's position
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from contracts.alarms import Alarm
from contracts.columns import EventColumns, column
from contracts.events import InferenceEvent, normalise_label
from detectors import DriftDetector
from streams.signals import Signal, VersionSignals, feed_columns_if_quiet, values_to_hand_over

if TYPE_CHECKING:
    from streams.monitor import LabelledSample, ModelMonitor, MonitorOutput


@dataclass(slots=True)
class BatchOutput:
    """What a batch caused, each item with the position in the batch of the event behind it."""

    alarms: list[tuple[int, Alarm]] = field(default_factory=list)
    labelled: list[tuple[int, LabelledSample]] = field(default_factory=list)

    def add(self, position: int, out: MonitorOutput) -> None:
        self.alarms += [(position, alarm) for alarm in out.alarms]
        self.labelled += [(position, sample) for sample in out.labelled]


#: fewer events of one model than this go one by one: the vectorised path's fixed cost (numpy
#: calls over some 30 signals, ~0.7 ms for 20 features) is more than that many events one by
#: one (~0.15 ms each); measured break-even 4-6 events for 5-60 features
ONE_BY_ONE = 5


def observe_inferences(monitor: ModelMonitor, events: Sequence[InferenceEvent]) -> BatchOutput:
    """:meth:`ModelMonitor.observe_inference` on each event in order, vectorised."""
    from streams.monitor import MonitorOutput

    out = BatchOutput()
    if len(events) < ONE_BY_ONE:
        for position, event in enumerate(events):
            out.add(position, monitor.observe_inference(event))
        return out
    if isinstance(events, EventColumns):  # a columnar envelope's events, as columns
        join = monitor.join
        if all(_version_batchable(monitor, v) for v in set(events.versions)) and not (
            join.labels_wait(events.request_ids)
        ):
            segment = _Segment(monitor, events, 0, len(events))
            segment.run(out)
            join.add_predictions(segment.events, segment.matrix)
            return out
        events = list(events)  # the general path below, which may go event by event
    start, n = 0, len(events)
    while start < n:
        if not _batchable(monitor, events[start]):
            out.add(start, monitor.observe_inference(events[start]))
            start += 1
            continue
        join, end = monitor.join, start
        checked: dict[str, bool] = {}  # per version; nothing it depends on changes meanwhile
        while end < n:
            event = events[end]
            ok = checked.get(event.model_version)
            if ok is None:
                ok = checked[event.model_version] = _batchable(monitor, event)
            if not ok or join.label_waits(event.request_id):
                break
            end += 1
        if end > start:  # no label among them: their predictions wait, in one pass
            segment = _Segment(monitor, events, start, end)
            segment.run(out)
            join.add_predictions(segment.events, segment.matrix)
            start = end
            continue
        # a label that came first (or expired meanwhile): its outcome follows its prediction
        joined = join.add_prediction(events[start])
        _Segment(monitor, events, start, start + 1).run(out)
        if joined is not None:
            outcome = MonitorOutput()
            monitor._observe_outcome(joined, outcome)
            outcome.alarms = monitor.publishable(outcome.alarms)
            out.add(start, outcome)
        start += 1
    return out


def _batchable(monitor: ModelMonitor, event: InferenceEvent) -> bool:
    """Whether feeding ``event`` in a batch cannot differ from feeding it alone: the feature
    layout is fixed, the version's signals exist, and none is calibrated without its baseline
    (only a checkpoint from an older release can hold that; one by one, the next event would
    capture it)."""
    return _version_batchable(monitor, event.model_version)


def _version_batchable(monitor: ModelMonitor, version: str) -> bool:
    if not monitor.feature_order:
        return False
    v = monitor.versions.get(version)
    return v is not None and all(s.baseline is not None or not s.calibrated for s in v.signals())


class _Segment:
    """Events ``start:end`` of a batch, every one of them batchable, none joining a label
    (or one event that does)."""

    def __init__(
        self, monitor: ModelMonitor, events: Sequence[InferenceEvent], start: int, end: int
    ) -> None:
        self.monitor = monitor
        self.events = events if start == 0 and end == len(events) else events[start:end]
        self.start = start
        self.alarms: list[tuple[int, int, Alarm]] = []  # (position, feeding order, alarm)
        self.rank = 0
        #: the feature values when every event has the same features in the same order: a row
        #: per event, columns in that order (set by run)
        self.matrix: np.ndarray | None = None

    def run(self, out: BatchOutput) -> None:
        monitor, events = self.monitor, self.events
        monitor.counts["inferences"] += len(events)
        served = monitor.served
        times = column(events, "event_time")
        versions = column(events, "model_version")
        monitor.model_version = versions[-1]
        for version, t in zip(versions, times, strict=True):  # newest prediction per version
            if t > served.get(version, -math.inf):
                served[version] = t
        latencies = column(events, "latency_ms")
        layout = monitor.feature_order
        if isinstance(events, EventColumns):
            shared, matrix = events.names, events.matrix
        else:
            features = list(map(_FEATURES, events))
            shared, matrix = tuple(features[0]), None
            if all(map(shared.__eq__, map(tuple, features))):  # one layout: one matrix
                matrix = np.fromiter(
                    chain.from_iterable(map(dict.values, features)),
                    dtype=np.float64,
                    count=len(events) * len(shared),
                ).reshape(len(events), len(shared))
        if matrix is not None:
            self.matrix = matrix
            incomplete = [not set(layout).issubset(shared)] * len(events)
            checked, outside = monitor.ranges.check_matrix(shared, matrix)
            for stats in monitor.feature_stats.values():
                stats.add(times, shared, matrix)
        else:
            incomplete = [any(name not in e.features for name in layout) for e in events]
            pairs = [monitor.ranges.check(e.features) for e in events]
            checked, outside = [c for c, _ in pairs], [o for _, o in pairs]
            names, table = _feature_table(events)
            for stats in monitor.feature_stats.values():
                stats.add(times, names, table)
        for window in monitor.windows.values():
            window.add_inferences(times, latencies, incomplete, checked, outside)
        everyone = range(len(events))
        self.feed(monitor.throughput, times, everyone, "warning")
        timed = [i for i, ms in enumerate(latencies) if ms is not None]
        self.feed(monitor.slo, [latencies[i] for i in timed], timed, "critical")
        positive = [i for i in timed if latencies[i] > 0]
        logs = [math.log(latencies[i]) for i in positive]
        self.feed(monitor.latency, logs, positive, "warning")
        if matrix is not None:
            self.uniform_inputs(shared, matrix)
        else:
            self.mixed_inputs()
        self.outputs()
        self.rules()
        self.alarms.sort(key=lambda item: item[:2])
        for i, _, alarm in self.alarms:  # through the alarm book, in the one-by-one order
            out.alarms += [(self.start + i, a) for a in self.monitor.publishable([alarm])]

    def feed(
        self,
        signal: Signal,
        values: Sequence[Any],
        positions: Sequence[int],
        severity: str,
        owner: VersionSignals | None = None,
    ) -> None:
        """``values[j]`` is the value of the event at ``positions[j]`` (in the segment);
        ``owner``: the version whose output signal this is."""
        rank, self.rank = self.rank, self.rank + 1
        if not len(values):
            return
        monitor, events = self.monitor, self.events
        cooldown = monitor.config.alarm_cooldown

        def describe(j: int, detector: DriftDetector) -> Alarm:
            event = events[positions[j]]
            made_by = event.model_version if owner is None else owner.version
            return monitor._alarm(signal, detector, event.event_time, severity, made_by)

        start = 0
        if owner is not None and signal.baseline is None:
            # Still learning its reference: one by one until it is calibrated, so that the
            # baseline a later version inherits is the state at that very value.
            while start < len(values) and signal.baseline is None:
                ahead = _values_before_calibrated(signal) - 1
                if ahead > 0:  # none of these can complete the reference: one block
                    block = values[start : start + ahead]
                    due = signal.feed_many(
                        block, cooldown, lambda j, d, at=start: describe(at + j, d)
                    )
                    self.raised(rank, positions, start, due)
                    start += len(block)
                    continue
                due = [(0, describe(start, d)) for d in signal.feed(values[start], cooldown)]
                self.raised(rank, positions, start, due)
                start += 1
                if signal.calibrated:
                    owner.capture_baselines()
        if start < len(values):
            due = signal.feed_many(values[start:], cooldown, lambda j, d: describe(start + j, d))
            self.raised(rank, positions, start, due)

    def raised(
        self, rank: int, positions: Sequence[int], start: int, due: list[tuple[int, Alarm]]
    ) -> None:
        self.alarms += [(positions[start + j], rank, alarm) for j, alarm in due]

    # -- features ------------------------------------------------------------------------------
    def uniform_inputs(self, layout: tuple[str, ...], matrix: np.ndarray) -> None:
        """Every event has the same features in the same order: one matrix (a row each)."""
        monitor, everyone = self.monitor, range(len(self.events))
        column = {name: j for j, name in enumerate(layout)}
        order = monitor.feature_order
        if all(name in column for name in order):
            rows = matrix[:, [column[name] for name in order]]
            self.feed(monitor.data, rows, everyone, "warning")
            self.feed(monitor.outliers, rows, everyone, "warning")
        else:
            self.rank += 2
        # each feature's signal: advanced together where that raises no alarm (the usual
        # case), in blocks cut where a rolling reference changes hands; from the block where
        # a signal would raise one, it is fed on its own; ranks stay in layout order
        n = len(self.events)
        signals = [self.feature_signal(name, n) for name in layout]
        present = [j for j, signal in enumerate(signals) if signal is not None]
        first, together, start = self.rank, list(enumerate(present)), 0
        while start < n and together:
            group = [signals[j] for _, j in together]
            end = min(n, start + values_to_hand_over(group))
            quiet = feed_columns_if_quiet(group, matrix[start:end, [j for _, j in together]])
            for (k, j), ok in zip(together, quiet.tolist(), strict=True):
                if not ok:
                    self.rank = first + k
                    self.feed(signals[j], matrix[start:, j], range(start, n), "warning")
            together = [pair for pair, ok in zip(together, quiet.tolist(), strict=True) if ok]
            start = end
        self.rank = first + len(present)

    def mixed_inputs(self) -> None:
        """Events with different features: rows where the layout is complete, then each
        feature's values where it is present (signals created in order of first sight)."""
        monitor, events = self.monitor, self.events
        order = monitor.feature_order
        complete = [i for i, e in enumerate(events) if all(n in e.features for n in order)]
        rows = np.array([[events[i].features[n] for n in order] for i in complete])
        self.feed(monitor.data, rows, complete, "warning")
        self.feed(monitor.outliers, rows, complete, "warning")
        columns: dict[str, tuple[Signal, list[float], list[int]]] = {}
        for i, event in enumerate(events):
            for name, value in event.features.items():
                found = columns.get(name)
                if found is None:
                    signal = self.feature_signal(name, 1)
                    if signal is None:
                        continue
                    found = columns[name] = (signal, [], [])
                found[1].append(value)
                found[2].append(i)
        for signal, values, positions in columns.values():
            self.feed(signal, np.asarray(values, dtype=np.float64), positions, "warning")

    def feature_signal(self, name: str, occurrences: int) -> Signal | None:
        monitor = self.monitor
        signal = monitor.features.get(name)
        if signal is None:
            if len(monitor.features) >= monitor.config.max_features:
                monitor.counts["features_dropped"] += occurrences
                return None
            signal = monitor.features[name] = monitor.new_feature_signal(name)
        return signal

    # -- outputs -------------------------------------------------------------------------------
    def outputs(self) -> None:
        """The output signals of each version, in the per-event feeding order."""
        monitor, events = self.monitor, self.events
        low = monitor.config.low_confidence
        versions = column(events, "model_version")
        version = versions[0]
        one_version = versions.count(version) == len(versions)
        if one_version and "regression" not in set(column(events, "task")):
            confidences = column(events, "score")
            if None in confidences and not isinstance(events, EventColumns):
                confidences = [e.confidence for e in events]  # probabilities instead (or none)
            if confidences.count(None) == len(confidences):  # no confidence at all: classes
                self.rank += 3  # the score, uncertainty and estimate signals get nothing
                v = monitor.versions[version]
                self.feed(v.classes, _classes(events), range(len(events)), "warning", v)
                return
            if None not in confidences:  # one version, classes and confidences: columns at once
                v = monitor.versions[version]
                everyone = range(len(events))
                self.feed(v.score, confidences, everyone, "warning", v)
                uncertain = (np.asarray(confidences, dtype=np.float64) < low).astype(np.float64)
                self.feed(v.uncertain, uncertain, everyone, "warning", v)
                if v.performance.calibrated:
                    pairs = list(zip(confidences, repeat(None)))
                    self.feed(v.performance, pairs, everyone, "warning", v)
                else:
                    self.rank += 1
                self.feed(v.classes, _classes(events), everyone, "warning", v)
                return
        groups: dict[str, _Outputs] = {}
        for i, event in enumerate(events):
            group = groups.get(event.model_version)
            if group is None:
                v = monitor.versions[event.model_version]
                group = groups[event.model_version] = _Outputs(v, v.performance.calibrated)
            if event.is_regression:
                output = event.score if event.score is not None else float(event.prediction)
                group.score.add(i, output)
                continue
            confidence = event.confidence
            if confidence is not None:
                group.score.add(i, confidence)
                group.uncertain.add(i, 1.0 if confidence < low else 0.0)
                if group.estimating:
                    group.performance.add(i, (confidence, None))
            group.classes.add(i, normalise_label(event.prediction))
        first_rank = self.rank
        for group in groups.values():
            self.rank = first_rank
            v = group.signals
            self.feed(v.score, group.score.values, group.score.positions, "warning", v)
            self.feed(
                v.uncertain,
                group.uncertain.values,
                group.uncertain.positions,
                "warning",
                v,
            )
            self.feed(
                v.performance,
                group.performance.values,
                group.performance.positions,
                "warning",
                v,
            )
            self.feed(v.classes, group.classes.values, group.classes.positions, "warning", v)

    def rules(self) -> None:
        monitor = self.monitor
        everyone = range(len(self.events))
        for rule in monitor.rules:
            values = rule.violated_many(_field_values(self.events, rule.field))
            n_broken = int(values.sum())
            if n_broken:
                key = f"rule_violations.{rule.name}"
                monitor.counts[key] = monitor.counts.get(key, 0) + n_broken
            self.feed(monitor.rule_signals[rule.name], values, everyone, "warning")


_FEATURES = attrgetter("features")


def _classes(events: Sequence[InferenceEvent]) -> list[str]:
    """Each event's prediction as a class (:func:`normalise_label`), once per distinct value:
    values that compare equal (1, 1.0, True) hash alike and normalise alike."""
    known: dict[Any, str] = {}
    classes = []
    for prediction in column(events, "prediction"):
        label = known.get(prediction)
        if label is None:
            label = known[prediction] = normalise_label(prediction)
        classes.append(label)
    return classes


def _feature_table(events: Sequence[InferenceEvent]) -> tuple[tuple[str, ...], np.ndarray]:
    """Events with different features as one table: every name seen (in order of first sight),
    NaN where an event lacks it."""
    column: dict[str, int] = {}
    for event in events:
        for name in event.features:
            column.setdefault(name, len(column))
    table = np.full((len(events), len(column)), np.nan)
    for i, event in enumerate(events):
        for name, value in event.features.items():
            table[i, column[name]] = value
    return tuple(column), table


def _values_before_calibrated(signal: Signal) -> int:
    """A lower bound on the values the signal needs before every detector is calibrated."""
    return min(getattr(d, "values_to_calibrate", lambda: 0)() for d in signal.detectors.values())


class _Column:
    __slots__ = ("positions", "values")

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.positions: list[int] = []

    def add(self, position: int, value: Any) -> None:
        self.values.append(value)
        self.positions.append(position)


class _Outputs:
    """One version's output values in a segment."""

    __slots__ = ("classes", "estimating", "performance", "score", "signals", "uncertain")

    def __init__(self, signals: VersionSignals, estimating: bool) -> None:
        self.signals = signals
        self.estimating = estimating  # label-free accuracy estimate calibrated: fed from here
        self.score, self.uncertain = _Column(), _Column()
        self.performance, self.classes = _Column(), _Column()


def _field_values(events: Sequence[InferenceEvent], name: str) -> list[Any]:
    """Each event's field as output rules name it (``score``, ``features.x``, ...), ``None``
    where it has none."""
    if name.startswith("features."):
        feature = name.removeprefix("features.")
        if isinstance(events, EventColumns):
            if feature not in events.names:
                return [None] * len(events)
            return events.matrix[:, events.names.index(feature)].tolist()
        return [e.features.get(feature) for e in events]
    if name in ("score", "probabilities", "prediction", "latency_ms"):
        return column(events, name)
    return [None] * len(events)
