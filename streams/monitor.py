"""Everything driftline watches for one model, as pure computation (no Kafka, no Redis).

A :class:`ModelMonitor` takes decoded events and returns what should happen: alarms to publish
and labelled samples to keep for the learners.  The Faust agents in :mod:`streams.agents` are
thin loops around it; tests and benchmarks drive it directly.

Signals watched per model:

- ``feature:<name>``: every detector in ``MonitorConfig.feature_detectors`` on each feature;
- ``score:score``: the same detectors on the model's confidence (``score`` or top probability);
- ``error:error``: ``MonitorConfig.error_detectors`` on the 0/1 error stream, once a label joins
  its prediction;
- ``system:log_latency_ms``: ``MonitorConfig.latency_detectors`` on the log of the serving
  latency (log, because latency is skewed and its changes are multiplicative);
- ``system:latency_ms``: the latency SLO (rolling p99 against ``slo_ms``);
- ``system:throughput``: event throughput per second of event time (drops);
- ``data:features``: the whole feature vector (per-feature KS/PSI with multiple-testing
  control), rows laid out in the sorted feature names of the first event;
- ``security:input_outliers``: the rate of feature rows far outside normal traffic;
- ``output:predicted_class``: the distribution of predicted classes (chi-square, PSI);
- ``output:low_confidence``: the rate of predictions below ``MonitorConfig.low_confidence``;
- ``performance:estimated_accuracy``: accuracy estimated from calibrated confidence (CBPE),
  calibrated on the first labelled predictions, then label-free;
- ``rule:<name>``: the violation rate of each of ``MonitorConfig.output_rules`` (counted in
  ``counts["rule_violations.<name>"]``).

The default detector everywhere is the calibrated :class:`~detectors.CUSUM`: it learns each
signal's level, scale, autocorrelation and shape from the signal's own first values, so one
setting suits features of any unit, and it recognises the 0/1 error stream by itself.

Model versions: the output signals (score, error, predicted class, low confidence, estimated
accuracy) are kept per model version (:class:`~streams.signals.VersionSignals`, the newest
``versions_kept``), and each event or outcome feeds the signals of the version that made the
prediction, so canary traffic never resets them.  A new version starts from its predecessor's
healthy baseline: it is judged against the old model at its best, not against itself.  Feature
detectors are shared (inputs do not depend on the model).

:meth:`ModelMonitor.checkpoint` captures every detector's state, the rolling windows (and the
stream positions the caller recorded in ``positions``) as JSON; :meth:`ModelMonitor.restore` resumes from it, so a
restarted worker continues its detectors instead of relearning their references.

>>> import random
>>> from contracts.events import InferenceEvent, LabelEvent
>>> monitor = ModelMonitor("churn")
>>> rng = random.Random(7)
>>> alarms = []
>>> for i in range(4000):
...     shift = 0.0 if i < 2000 else 3.0
...     e = InferenceEvent("churn", "v1", f"r{i}", 1000.0 + i, {"x": rng.gauss(shift, 1)}, 1, score=0.9)
...     alarms += monitor.observe_inference(e).alarms
>>> first = alarms[0]
>>> first.dedup_key, 2000 < first.index < 2100, first.severity
('churn/feature:x/cusum', True, 'warning')
>>> resumed = ModelMonitor("churn")
>>> resumed.restore(monitor.checkpoint())
>>> resumed.features["x"].detectors["cusum"].n_seen
4000
"""

from __future__ import annotations

import inspect
import logging
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contracts.alarms import VERSION_SCOPED_KINDS, Alarm, Resolution
from contracts.events import InferenceEvent, LabelEvent, normalise_label
from contracts.metrics import json_metric
from contracts.settings import Settings
from detectors import REGISTRY, DriftDetector, RollingReference, StateError
from detectors.output_rules import OutputRule, parse_rules
from streams.batch import BatchOutput, observe_inferences
from streams.feature_stats import FeatureStats
from streams.join import JoinedOutcome, LabelJoin
from streams.lifecycle import AlarmBook
from streams.profile import ReferenceProfile
from streams.ranges import FeatureRanges
from streams.rolling import Outcomes, WindowedMetrics
from streams.signals import Signal, VersionSignals

log = logging.getLogger(__name__)

DetectorSpec = tuple[str, dict[str, Any]]  # (registry name, constructor params)
CHECKPOINT_VERSION = 2


#: Labels waiting for their prediction that a checkpoint keeps (the newest; usually a handful:
#: a label overtakes its prediction only when the inference topic lags the label topic).
EARLY_LABELS_KEPT = 5000


@dataclass(frozen=True)
class MonitorConfig:
    """What to watch and how.  Every field has a default fit for a first deployment."""

    # The calibrated CUSUM: about one false alarm per 500k values per signal on stationary
    # streams (normal, heavy-tailed, autocorrelated, 0/1), see docs/detection-benchmark.md.
    feature_detectors: tuple[DetectorSpec, ...] = (("cusum", {}),)
    error_detectors: tuple[DetectorSpec, ...] = (("cusum", {}),)
    latency_detectors: tuple[DetectorSpec, ...] = (("cusum", {}),)  # on log latency
    # The whole feature vector: per-feature KS/PSI with Benjamini-Hochberg (interpretable:
    # says which features moved), and Mahalanobis (sees broken correlations).
    vector_detectors: tuple[DetectorSpec, ...] = (("feature_drift", {}), ("mahalanobis", {}))
    class_detectors: tuple[DetectorSpec, ...] = (("class_distribution", {}),)
    rate_detectors: tuple[DetectorSpec, ...] = (("cusum", {}),)  # low confidence, rule breaks
    performance_detectors: tuple[DetectorSpec, ...] = (("cbpe", {}),)
    # Rate of anomalous input rows (probing, attacks, a broken upstream feature).
    security_detectors: tuple[DetectorSpec, ...] = (("input_outlier_rate", {}),)
    slo_detectors: tuple[DetectorSpec, ...] = (("latency_slo", {"slo_ms": 250.0}),)
    throughput_detectors: tuple[DetectorSpec, ...] = (("throughput_drop", {}),)
    low_confidence: float = 0.6  # a prediction less confident than this counts as uncertain
    output_rules: tuple[dict[str, Any], ...] = (
        {"name": "probabilities_sum_to_one", "kind": "sum_to_one", "field": "probabilities"},
    )
    # (name, window_s, bucket_s): 12 buckets each, as the per-feature stats' slots, so both
    # cover the same span (11 to 12 buckets' worth: 55-60 s of the minute)
    windows: tuple[tuple[str, float, float], ...] = (
        ("1m", 60.0, 5.0),
        ("1h", 3600.0, 300.0),
        ("1d", 86_400.0, 7200.0),
    )
    positive_label: str = "1"
    alarm_cooldown: int = 500  # updates of one signal during which a repeat alarm is held back
    versions_kept: int = 3  # model versions whose output signals are kept (canaries, rollbacks)
    max_features: int = 1000
    join_ttl_s: float = 86_400.0  # a label may come a day (of event time) after its prediction
    join_max_pending: int = 100_000
    # The worker journals the join to Redis (streams/pending.py): waiting predictions survive
    # restarts and only the join_memory most recent stay in memory.  None: all in memory.
    join_memory: int | None = None
    # The family-wise false-alarm budget: about one false alarm per this many stationary events
    # per *model*, all its signals together.  Half goes to the feature signals, half to the
    # others, shared equally (Bonferroni): each calibrated detector (CUSUM ``target_arl``,
    # windowed tests' ``alpha`` per window) gets its share unless its spec sets one.
    false_alarm_events: float | None = 1_000_000.0  # None: each detector keeps its own setting
    # Alarm lifecycle (streams/lifecycle.py): an open alarm resolves after this much event time
    # without a detection on its key, once its signal is back to its baseline; alarms of one
    # model opened within incident_window_s of an open incident join it.
    resolve_after_s: float = 600.0
    incident_window_s: float = 300.0
    # Input signals (features, the feature vector, input outliers) re-learn their reference
    # every this many values while quiet (detectors/rolling.py), so daily and weekly cycles are
    # followed instead of paged; None keeps the first reference for good.
    input_refresh_every: int | None = 10_000

    @classmethod
    def from_settings(cls, settings: Settings) -> MonitorConfig:
        """The defaults, with what operators set in the environment (see :mod:`contracts.settings`)."""
        return cls(
            slo_detectors=(("latency_slo", {"slo_ms": settings.latency_slo_ms}),),
            low_confidence=settings.low_confidence,
            join_ttl_s=settings.join_ttl_s,
            join_memory=settings.join_memory,
            resolve_after_s=settings.resolve_after_s,
        )

    def build(
        self,
        specs: tuple[DetectorSpec, ...],
        run_length: float | None = None,
        rolling: bool = False,
    ) -> dict[str, DriftDetector]:
        """The detectors of ``specs``; with ``run_length``, each calibrated one is set for one
        false alarm per ``run_length`` values (where its spec does not say otherwise); with
        ``rolling``, each re-learns its reference every ``input_refresh_every`` values."""
        built: dict[str, DriftDetector] = {}
        for name, params in specs:
            params = _off_the_loop(name, _budgeted(name, params, run_length))
            if rolling and self.input_refresh_every:
                built[name] = RollingReference(name, params, self.input_refresh_every)
            else:
                built[name] = REGISTRY[name](**params)
        return built

    def run_length(self, signals: int) -> float | None:
        """Values between false alarms for each of ``signals`` sharing half the budget."""
        budget = self.false_alarm_events
        return None if budget is None else 2 * signals * budget

    def other_signals(self) -> int:
        """Signals besides the features that share the budget: log latency, throughput, the
        feature vector, input outliers, each rule, and a version's five output signals (the
        SLO is a rule about milliseconds, not a test, and takes no share)."""
        return 4 + len(self.output_rules) + 5

    def rules(self) -> list[OutputRule]:
        return parse_rules(list(self.output_rules))


@dataclass(slots=True)
class LabelledSample:
    """A prediction whose ground truth is known: what the learners train on."""

    model_id: str
    model_version: str
    request_id: str
    event_time: float
    features: dict[str, float]
    prediction: Any
    label: Any
    label_time: float = 0.0  # the label event's time (labels often arrive long after)

    @classmethod
    def from_joined(cls, model_id: str, joined: JoinedOutcome) -> LabelledSample:
        prediction, label = joined.prediction, joined.label
        return cls(
            model_id,
            prediction.model_version,
            prediction.request_id,
            prediction.event_time,
            prediction.features,
            prediction.prediction,
            label.label,
            label.event_time,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "model_version": self.model_version,
            "request_id": self.request_id,
            "event_time": self.event_time,
            "features": self.features,
            "prediction": self.prediction,
            "label": self.label,
            "label_time": self.label_time,
        }


@dataclass(slots=True)
class MonitorOutput:
    alarms: list[Alarm] = field(default_factory=list)
    labelled: list[LabelledSample] = field(default_factory=list)


class ModelMonitor:
    """Detectors, label join and rolling metrics for one model id."""

    def __init__(self, model_id: str, config: MonitorConfig | None = None) -> None:
        self.model_id = model_id
        self.config = config or MonitorConfig()
        self.model_version = ""
        self.features: dict[str, Signal] = {}
        share = self.config.run_length(self.config.other_signals())
        self.other_run_length = share  # values between false alarms, per non-feature signal

        def build(specs: tuple[DetectorSpec, ...]) -> dict[str, DriftDetector]:
            return self.config.build(specs, share)

        self.versions: OrderedDict[str, VersionSignals] = OrderedDict()  # oldest first
        self.latency = Signal("system", "log_latency_ms", build(self.config.latency_detectors))
        self.slo = Signal("system", "latency_ms", build(self.config.slo_detectors))
        self.throughput = Signal("system", "throughput", build(self.config.throughput_detectors))
        inputs = self.config.vector_detectors, self.config.security_detectors
        self.data = Signal("data", "features", self.config.build(inputs[0], share, rolling=True))
        self.outliers = Signal(
            "security", "input_outliers", self.config.build(inputs[1], share, rolling=True)
        )
        self.rules = self.config.rules()
        self.rule_signals = {
            rule.name: Signal("rule", rule.name, build(self.config.rate_detectors))
            for rule in self.rules
        }
        self.book = AlarmBook(self.config.resolve_after_s, self.config.incident_window_s)
        self.feature_order: list[str] = []  # the data signal's row layout, from the first event
        self.positions: dict[str, int] = {}  # "<topic>:<partition>" -> last offset applied
        config = self.config
        journal = config.join_memory is not None
        self.join = LabelJoin(
            config.join_ttl_s, config.join_max_pending, config.join_memory, journal
        )
        self.windows = {name: WindowedMetrics(w, b) for name, w, b in self.config.windows}
        #: per-feature count, mean, std, min and max over each window (data quality)
        self.feature_stats = {
            name: FeatureStats(w, self.config.max_features) for name, w, _ in self.config.windows
        }
        self.ranges = FeatureRanges()  # reference ranges: the out-of-range rate (data quality)
        #: each model version's newest prediction (event time): a version that stopped serving
        #: closes the alarms on its own signals
        self.served: dict[str, float] = {}
        self.counts = {
            "inferences": 0,
            "labels": 0,
            "joined": 0,
            "alarms": 0,
            "features_dropped": 0,
        }

    # -- inputs ------------------------------------------------------------------------------
    def observe_inference(self, event: InferenceEvent) -> MonitorOutput:
        out = MonitorOutput()
        self.counts["inferences"] += 1
        self.model_version = event.model_version
        self.served[event.model_version] = max(
            event.event_time, self.served.get(event.model_version, -math.inf)
        )
        layout = self.feature_order or sorted(event.features)[: self.config.max_features]
        incomplete = any(name not in event.features for name in layout)
        ranged = self.ranges.check(event.features)
        for window in self.windows.values():
            window.add_inference(event.event_time, event.latency_ms, incomplete, ranged)
        if event.features:
            row = np.array([list(event.features.values())], dtype=np.float64)
            for stats in self.feature_stats.values():
                stats.add([event.event_time], tuple(event.features), row)
        self._observe_system(event, out)
        self._observe_inputs(event, out)
        self._observe_outputs(event, out)
        joined = self.join.add_prediction(event)
        if joined is not None:
            self._observe_outcome(joined, out)
        out.alarms = self.publishable(out.alarms)
        return out

    def observe_inferences(self, events: Sequence[InferenceEvent]) -> BatchOutput:
        """:meth:`observe_inference` on each event in order, vectorised (:mod:`streams.batch`):
        the same alarms, counts, windows and states, each alarm and sample with the position
        of its event in ``events``."""
        return observe_inferences(self, events)

    def observe_labels(self, labels: Sequence[LabelEvent]) -> BatchOutput:
        """:meth:`observe_label` on each label in order: the whole batch through the join
        first (one lookup of the joined ids), then each outcome (which changes nothing the join
        reads); the windows count the batch's outcomes together at the end (they change
        nothing the signals read), one bucket's run at once (:meth:`WindowedMetrics.add_outcomes`)."""
        out = BatchOutput()
        outcomes = Outcomes()
        for position, joined in enumerate(self.join.add_labels(labels)):
            out.add(position, self._after_label(joined, outcomes))
        self._count_outcomes(outcomes)
        return out

    def _count_outcomes(self, outcomes: Outcomes) -> None:
        """The windows' share of the outcomes held back so far (then none are)."""
        if outcomes:
            for window in self.windows.values():
                window.add_outcomes(outcomes)
            outcomes.clear()

    def _observe_system(self, event: InferenceEvent, out: MonitorOutput) -> None:
        t = event.event_time
        self._feed(self.throughput, t, t, out, "warning")
        if event.latency_ms is not None:
            self._feed(self.slo, event.latency_ms, t, out, "critical")
            if event.latency_ms > 0:
                self._feed(self.latency, math.log(event.latency_ms), t, out, "warning")

    def _observe_inputs(self, event: InferenceEvent, out: MonitorOutput) -> None:
        t = event.event_time
        if not self.feature_order:
            self.feature_order = sorted(event.features)[: self.config.max_features]
        if self.feature_order and all(name in event.features for name in self.feature_order):
            row = [event.features[name] for name in self.feature_order]
            self._feed(self.data, row, t, out, "warning")
            self._feed(self.outliers, row, t, out, "warning")
        for name, value in event.features.items():
            signal = self.features.get(name)
            if signal is None:
                if len(self.features) >= self.config.max_features:
                    self.counts["features_dropped"] += 1
                    continue
                signal = self.features[name] = self.new_feature_signal(name)
            self._feed(signal, value, t, out, "warning")

    def _observe_outputs(self, event: InferenceEvent, out: MonitorOutput) -> None:
        t = event.event_time
        v = self.version_signals(event.model_version)
        if event.is_regression:  # the output itself is the signal; no classes, no confidence
            output = event.score if event.score is not None else float(event.prediction)
            self._feed(v.score, output, t, out, "warning", v.version)
            v.capture_baselines()
            self._observe_rules(event, out)
            return
        confidence = event.confidence
        if confidence is not None:
            self._feed(v.score, confidence, t, out, "warning", v.version)
            uncertain = 1.0 if confidence < self.config.low_confidence else 0.0
            self._feed(v.uncertain, uncertain, t, out, "warning", v.version)
            if v.performance.calibrated:  # afterwards, no labels needed
                self._feed(v.performance, (confidence, None), t, out, "warning", v.version)
        self._feed(v.classes, normalise_label(event.prediction), t, out, "warning", v.version)
        v.capture_baselines()
        self._observe_rules(event, out)

    def _observe_rules(self, event: InferenceEvent, out: MonitorOutput) -> None:
        t = event.event_time
        if not self.rules:
            return
        fields = {
            "score": event.score,
            "probabilities": event.probabilities,
            "prediction": event.prediction,
            "latency_ms": event.latency_ms,
            **{f"features.{k}": v for k, v in event.features.items()},
        }
        for rule in self.rules:
            broken = rule.violated(fields)
            if broken:
                key = f"rule_violations.{rule.name}"
                self.counts[key] = self.counts.get(key, 0) + 1
            self._feed(self.rule_signals[rule.name], float(broken), t, out, "warning")

    def observe_label(self, label: LabelEvent) -> MonitorOutput:
        return self._after_label(self.join.add_label(label))

    def _after_label(
        self, joined: JoinedOutcome | None, held: Outcomes | None = None
    ) -> MonitorOutput:
        """A label that went through the join: its outcome, if it joined its prediction.
        ``held``: where a batch holds its outcomes back for the windows (:meth:`observe_labels`)."""
        out = MonitorOutput()
        self.counts["labels"] += 1
        if joined is not None:
            self._observe_outcome(joined, out, held)
        out.alarms = self.publishable(out.alarms)
        return out

    # -- alarm lifecycle -----------------------------------------------------------------------
    def publishable(self, raised: list[Alarm]) -> list[Alarm]:
        """The detections, in order, through the alarm book: those that open an alarm (with
        their incident); repeats of an open one are counted in ``alarms_repeated``."""
        published = []
        for alarm in raised:
            opened = self.book.open(alarm)
            if opened is None:
                self.counts["alarms_repeated"] = self.counts.get("alarms_repeated", 0) + 1
            else:
                published.append(opened)
        self.counts["alarms"] += len(published)
        return published

    def resolve_quiet(self) -> list[Resolution]:
        """Open alarms that have resolved by the newest event time this model has seen."""
        if not self.book.open_alarms:
            return []
        now = max(window.newest for window in self.windows.values())
        resolved = self.book.resolve(now, self._recovered)
        self.counts["alarms_resolved"] = self.counts.get("alarms_resolved", 0) + len(resolved)
        return resolved

    def _recovered(self, alarm: Alarm) -> bool | str:
        """Whether the signal behind ``alarm`` is back: its detector has learnt a new reference
        and (for a CUSUM) that reference is within the smallest shift it watches of the
        baseline the alarm was raised against.  An alarm on a model version's own signals also
        ends (with the reason) once that version has served nothing for ``resolve_after_s``
        while another one serves: its signals get no new values, so they would never look
        normal again, and the version it judges is out of service."""
        retired = self._retired(alarm)
        if retired:
            return retired
        detector = self._detector_of(alarm)
        if detector is None:  # its signal is gone (an old version): nothing left to wait for
            return True
        if getattr(detector, "fired", None) or not getattr(detector, "calibrated", True):
            return False  # still at the alarm, or still learning what normal is now
        old, new = alarm.window.get("baseline"), getattr(detector, "baseline", None)
        if not old or not new:
            return True
        shift = min(detector.params.get("shifts", (0.25,)))
        if "rate" in old and "rate" in new:
            sd = math.sqrt(max(old["rate"] * (1 - old["rate"]), 1e-12))
            return abs(new["rate"] - old["rate"]) <= shift * sd
        if "mean" in old and "mean" in new:
            return abs(new["mean"] - old["mean"]) <= shift * max(old.get("sd", 0.0), 1e-12)
        return True

    def _retired(self, alarm: Alarm) -> str | None:
        version = alarm.model_version
        if alarm.signal_kind not in VERSION_SCOPED_KINDS or version == self.model_version:
            return None
        last = self.served.get(version)
        newest = self.served.get(self.model_version)
        if last is None or newest is None or newest - last < self.config.resolve_after_s:
            return None
        return (
            f"version {version} has served no prediction for {newest - last:.0f}s "
            f"({self.model_version} serves)"
        )

    def _detector_of(self, alarm: Alarm) -> DriftDetector | None:
        key = f"{alarm.signal_kind}:{alarm.signal_name}"
        candidates = [*self._fixed_signals(), *self.features.values()]
        version = self.versions.get(alarm.model_version)
        if version is not None:
            candidates = [*version.signals(), *candidates]
        for signal in candidates:
            if signal.key == key:
                return signal.detectors.get(alarm.detector)
        return None

    # -- outputs -----------------------------------------------------------------------------
    def metrics(self) -> dict[str, dict[str, Any]]:
        """Each window's metrics; ``feature_stats`` is a JSON string (a Redis hash holds flat
        values): per feature ``n``, ``mean``, ``std``, ``min``, ``max``."""
        out = {}
        for name, window in self.windows.items():
            snapshot = window.snapshot()
            summary = self.feature_stats[name].summary()
            snapshot["feature_stats"] = json_metric(summary) if summary else None
            out[name] = snapshot
        return out

    def readings(self) -> list[tuple[str, str, float, float]]:
        """Each detector's statistic against its threshold: ``(signal key, detector name,
        statistic, threshold)``, for dashboards and Prometheus.  A detector still calibrating
        (no threshold yet) is left out."""
        out = []
        for signal in self.signals():
            for name, detector in signal.detectors.items():
                try:
                    statistic, threshold = float(detector.statistic), float(detector.threshold)
                except (ArithmeticError, TypeError, ValueError, AttributeError):
                    continue
                if math.isfinite(statistic) and math.isfinite(threshold):
                    out.append((signal.key, name, statistic, threshold))
        return out

    # -- checkpoints -------------------------------------------------------------------------
    # -- model versions ----------------------------------------------------------------------
    def version_signals(self, version: str) -> VersionSignals:
        """The output signals of ``version``, created from its predecessor's baseline."""
        found = self.versions.get(version)
        if found is not None:
            return found
        predecessor = next(reversed(self.versions.values()), None)
        config, share = self.config, self.other_run_length

        def build(specs: tuple[DetectorSpec, ...]) -> dict[str, DriftDetector]:
            return config.build(specs, share)

        found = VersionSignals(
            version,
            score=lambda: build(config.feature_detectors),
            error=lambda: build(config.error_detectors),
            classes=lambda: build(config.class_detectors),
            rates=lambda: build(config.rate_detectors),
            performance=lambda: build(config.performance_detectors),
            predecessor=predecessor,
        )
        self.versions[version] = found
        while len(self.versions) > self.config.versions_kept:
            self.versions.popitem(last=False)
        return found

    def warm_up(self, profile: ReferenceProfile) -> None:
        """Feed a reference profile (training inputs) to the input signals before any live
        event, so they start calibrated (:mod:`streams.profile`); anything they would raise on
        it is dropped: the profile is normal by definition."""
        if self.feature_order or not profile.rows:
            return  # live traffic already set the layout: the profile comes too late
        self.feature_order = list(profile.features)[: self.config.max_features]
        self.ranges.set_reference(profile.columns())
        rows = np.asarray(profile.rows, dtype=np.float64)[:, : len(self.feature_order)]
        cooldown = self.config.alarm_cooldown

        def drop(_: int, __: DriftDetector) -> None:
            return None

        for signal in (self.data, self.outliers):
            signal.feed_many(rows, cooldown, drop)
        for j, name in enumerate(self.feature_order):
            signal = self.features.get(name) or self.new_feature_signal(name)
            self.features[name] = signal
            signal.feed_many(rows[:, j], cooldown, drop)
        for signal in [self.data, self.outliers, *self.features.values()]:
            signal.cooldown_left = 0
        self.counts["profile_rows"] = len(rows)

    def new_feature_signal(self, name: str) -> Signal:
        """A feature's signal, its detectors set for its share of the budget: half of it,
        split over the features of the model's layout (known from its first event)."""
        n_features = max(len(self.feature_order), 1)
        share = self.config.run_length(n_features)
        detectors = self.config.build(self.config.feature_detectors, share, rolling=True)
        return Signal("feature", name, detectors)

    def _current(self) -> VersionSignals:
        return self.version_signals(self.model_version)

    @property
    def score(self) -> Signal:
        return self._current().score

    @property
    def error(self) -> Signal:
        return self._current().error

    @property
    def classes(self) -> Signal:
        return self._current().classes

    @property
    def uncertain(self) -> Signal:
        return self._current().uncertain

    @property
    def performance(self) -> Signal:
        return self._current().performance

    def _fixed_signals(self) -> list[Signal]:
        system = [self.latency, self.slo, self.throughput, self.data, self.outliers]
        return [*system, *self.rule_signals.values()]

    def signals(self) -> list[Signal]:
        versioned = [s for v in self.versions.values() for s in v.signals()]
        return [*versioned, *self._fixed_signals(), *self.features.values()]

    def checkpoint(self) -> dict[str, Any]:
        """Detector states, positions and counts as JSON-ready data."""
        return {
            "version": CHECKPOINT_VERSION,
            "model_id": self.model_id,
            "model_version": self.model_version,
            "positions": dict(self.positions),
            "feature_order": list(self.feature_order),
            "counts": dict(self.counts),
            "signals": {
                signal.key: signal.checkpoint()
                for signal in [*self._fixed_signals(), *self.features.values()]
            },
            "versions": {v: signals.checkpoint() for v, signals in self.versions.items()},
            "windows": {name: window.to_state() for name, window in self.windows.items()},
            "feature_stats": {name: s.to_state() for name, s in self.feature_stats.items()},
            "served": dict(self.served),
            "alarm_book": self.book.to_state(),
            "ranges": self.ranges.to_state(),
            "early_labels": self.join.early_labels(EARLY_LABELS_KEPT),
        }

    def restore(self, saved: dict[str, Any]) -> None:
        """Continue from :meth:`checkpoint`'s data (detectors whose parameters changed restart)."""
        if saved.get("version") != CHECKPOINT_VERSION or saved.get("model_id") != self.model_id:
            raise StateError(
                f"not a version-{CHECKPOINT_VERSION} checkpoint of model {self.model_id!r}"
            )
        self.model_version = str(saved.get("model_version", ""))
        self.positions = {str(k): int(v) for k, v in saved.get("positions", {}).items()}
        self.feature_order = [str(name) for name in saved.get("feature_order", [])]
        self.counts.update({k: int(v) for k, v in saved.get("counts", {}).items()})
        for name, state in saved.get("windows", {}).items():
            if name in self.windows:
                self.windows[name].restore(state)
        self.served = {str(v): float(t) for v, t in saved.get("served", {}).items()}
        for name, state in saved.get("feature_stats", {}).items():  # absent in older ones
            if name in self.feature_stats:
                self.feature_stats[name].restore(state)
        self.book.restore(saved.get("alarm_book", {}))
        if "ranges" in saved:  # absent in older checkpoints: the ranges are learnt again
            self.ranges.restore(saved["ranges"])
        self.join.restore_early_labels(self.model_id, saved.get("early_labels", []))
        self.versions.clear()
        for version, saved_signals in saved.get("versions", {}).items():
            self.version_signals(str(version)).restore(saved_signals)
        fixed = {signal.key: signal for signal in self._fixed_signals()}
        for key, state in saved.get("signals", {}).items():
            signal = fixed.get(key)
            if signal is None and key.startswith("feature:"):
                name = key.removeprefix("feature:")
                if len(self.features) >= self.config.max_features:
                    continue
                signal = self.features[name] = self.new_feature_signal(name)
            if signal is not None:
                signal.restore(state)

    # -- internals ---------------------------------------------------------------------------
    def _observe_outcome(
        self, joined: JoinedOutcome, out: MonitorOutput, held: Outcomes | None = None
    ) -> None:
        prediction, label = joined.prediction, joined.label
        if prediction.is_regression:
            if held is not None:  # the windows see every outcome in order
                self._count_outcomes(held)
            self._observe_regression_outcome(joined, out)
            return
        self.counts["joined"] += 1
        predicted, actual = normalise_label(prediction.prediction), normalise_label(label.label)
        correct = predicted == actual
        positive = self.config.positive_label
        probabilities = _probabilities(prediction, predicted, actual, positive)
        outcome = (
            label.event_time,
            predicted == positive,
            actual == positive,
            correct,
            predicted,
            actual,
            probabilities,
        )
        if held is not None:
            held.append(*outcome)
        else:
            for window in self.windows.values():
                window.add_outcome(*outcome)
        out.labelled.append(LabelledSample.from_joined(self.model_id, joined))
        # Each outcome counts for the version that made the prediction.
        v = self.version_signals(prediction.model_version)
        t = label.event_time
        self._feed(v.error, 0.0 if correct else 1.0, t, out, "critical", v.version)
        confidence = prediction.confidence
        if confidence is not None and not v.performance.calibrated:
            # Labelled predictions calibrate the label-free accuracy estimate.
            self._feed(v.performance, (confidence, correct), t, out, "warning", v.version)
        v.capture_baselines()

    def _observe_regression_outcome(self, joined: JoinedOutcome, out: MonitorOutput) -> None:
        """A regressor's outcome: the absolute error is the error signal (its own CUSUM
        calibration learns its level and spread); windows get MAE and RMSE."""
        prediction, label = joined.prediction, joined.label
        if isinstance(label.label, bool) or not isinstance(label.label, int | float):
            self.counts["labels_unusable"] = self.counts.get("labels_unusable", 0) + 1
            return
        self.counts["joined"] += 1
        error = float(prediction.prediction) - float(label.label)
        for window in self.windows.values():
            window.add_regression_outcome(label.event_time, error, float(label.label))
        out.labelled.append(LabelledSample.from_joined(self.model_id, joined))
        v = self.version_signals(prediction.model_version)
        self._feed(v.error, abs(error), label.event_time, out, "critical", v.version)
        v.capture_baselines()

    def _window_of(self, detector: DriftDetector) -> dict[str, Any]:
        """What the alarm's reader needs to see what moved."""
        window: dict[str, Any] = {"values_seen": detector.n_seen}
        width = getattr(detector, "width", None)
        if width is not None:
            window["width"] = int(width)
        report = getattr(detector, "feature_report", None)
        if report:
            names = self.feature_order
            window["features_drifted"] = [
                {"feature": names[f["feature"]], "ks": f["ks"], "psi": f["psi"]}
                for f in report
                if f["drifted"] and f["feature"] < len(names)
            ]
        fired = getattr(detector, "fired", None)
        if fired:
            window["fired"] = fired
        baseline = getattr(detector, "baseline", None)
        if baseline:
            window["baseline"] = baseline
        estimate = getattr(detector, "estimated_accuracy", None)
        if estimate is not None:
            window["estimated_accuracy"] = estimate
            window["reference_accuracy"] = detector.reference_accuracy
        return window

    def _alarm(
        self,
        signal: Signal,
        detector: DriftDetector,
        event_time: float,
        severity: str,
        version: str,
    ) -> Alarm:
        """The alarm ``detector`` raised on ``signal`` just now (read before it moves on)."""
        result = detector.result
        return Alarm(
            model_id=self.model_id,
            model_version=version,
            signal_kind=signal.kind,
            signal_name=signal.name,
            detector=result.detector,
            statistic=result.statistic,
            threshold=result.threshold,
            window=self._window_of(detector),
            severity=_severity(signal, detector, severity),
            event_time=event_time,
            index=result.index,
            detector_params=result.params,
        )

    def _feed(
        self,
        signal: Signal,
        value: Any,
        event_time: float,
        out: MonitorOutput,
        severity: str,
        version: str | None = None,
    ) -> None:
        version = self.model_version if version is None else version
        for detector in signal.feed(value, self.config.alarm_cooldown):
            out.alarms.append(self._alarm(signal, detector, event_time, severity, version))


def _probabilities(
    prediction: InferenceEvent, predicted: str, actual: str, positive: str
) -> tuple[float | None, float | None, float | None] | None:
    """(P(positive), p(true class), confidence) of a classifier's prediction, where known:
    from ``probabilities``; else from ``score`` (the confidence in the predicted class), which
    gives P(positive) and p(true) only for a binary model."""
    if prediction.probabilities:
        probs = {normalise_label(k): v for k, v in prediction.probabilities.items()}
        return probs.get(positive), probs.get(actual, 0.0), max(probs.values())
    score = prediction.score
    if score is None:
        return None
    if prediction.task == "multiclass":
        return None, (score if predicted == actual else None), score
    p_positive = score if predicted == positive else 1.0 - score
    return p_positive, (score if predicted == actual else 1.0 - score), score


def _off_the_loop(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """A detector that can train on a thread of its own (``background``) does so in a worker,
    unless its spec says otherwise: training must not stall the event loop."""
    accepts = inspect.signature(REGISTRY[name].__init__).parameters
    if "background" in accepts and "background" not in params:
        return {**params, "background": True}
    return params


def _budgeted(name: str, params: dict[str, Any], run_length: float | None) -> dict[str, Any]:
    """``params`` with the detector's false-alarm setting derived from ``run_length``."""
    if run_length is None:
        return params
    accepts = inspect.signature(REGISTRY[name].__init__).parameters
    if "target_arl" in accepts and "target_arl" not in params:
        return {**params, "target_arl": run_length}
    if "alpha" in accepts and "window" in accepts and "alpha" not in params:
        window = params.get("window", accepts["window"].default)
        return {**params, "alpha": min(0.5, window / run_length)}
    return params


def _severity(signal: Signal, detector: DriftDetector, default: str) -> str:
    """An error signal that moved *down* (the model got better) is news, not a page."""
    fired = getattr(detector, "fired", None)
    if signal.kind == "error" and fired and all(" -" in label for label in fired):
        return "info"
    return default
