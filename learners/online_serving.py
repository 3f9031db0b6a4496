"""Online learning where the model serves: an incremental champion learns each label, guarded.

A gated update loop versions every change, so it moves in steps (an alarm, a batch of labels, a
gate).  On streams whose concept moves from one hour to the next (Elec2's prices), a model that
learns every label as it comes beats any batch cadence: river's own test-then-train loop.  For
incremental models (river) a :class:`~learners.handle.ModelHandle` can do that itself
(``handle.learn_online()``): it remembers the features of recent requests, and each label passed
to ``observe_label`` is learned by a copy of the served version, in a background thread.

The guard: the served version as published (its registry digest) keeps scoring the same labelled
requests.  Over the last ``window`` labels, if the learning copy does worse than that frozen
version by more than ``tolerance`` (accuracy for classifiers; for regressors mean absolute error,
relative to the frozen version's) *and* the paired difference is significant (``z`` standard
errors below zero), serving falls back to the published version, with a warning and a count
(``fallbacks``).  The copy keeps learning, still scored test-then-train, and serves again once it
is at least level with the published version over the window.  Noisy or poisoned labels, or a
learning rate that diverges, cannot keep a model below the version the gate let through.

Why fall back rather than throw the copy away: on Elec2 a guard that restarted learning from
the published version tripped on stretches where the four-week-old version fitted better (two
of them significant), and each restart threw away everything learned: 0.810 against 0.816 for
the same learner never guarded.  A new champion (a hot swap) restarts learning from it.

What it is not: the learned state lives in this process.  Replicas learn apart, and a restarted
server starts again from the registry's champion.  :meth:`OnlineLearning.snapshot` gives the
learned model, to register as a candidate (``registry.register``) and let the gate decide.

Serving stays lock-free: the learning thread publishes a fresh copy of its model every
``publish_every`` labels, and a prediction reads that reference once.

>>> import numpy as np
>>> from river import linear_model
>>> from learners.adapters.river_model import RiverAdapter
>>> from learners.handle import ServedModel
>>> base = ServedModel("v1", "sha256:0", 1, RiverAdapter(linear_model.LogisticRegression(),
...                    "binary", ["0", "1"], ["x"]))
>>> online = OnlineLearning(base, start_thread=False)
>>> for i in range(400):
...     x = float(i % 7 - 3)
...     online.remember(f"r{i}", {"x": x})
...     online.learn(f"r{i}", "1" if x > 0 else "0")    # the thread calls this for each label
>>> online.view.predict_one({"x": 2.0})[0], online.view.predict_one({"x": -2.0})[0]
('1', '0')
>>> report = online.report()
>>> report["learned"], report["online_accuracy"] > report["base_accuracy"], report["serving"]
(400, True, 'learned')
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any

from contracts.events import normalise_label
from learners.adapters.base import InvalidModel, ModelAdapter
from learners.background import QueueThread

if TYPE_CHECKING:
    from learners.handle import ServedModel

log = logging.getLogger(__name__)


class OnlineLearning:
    """A served version's learning copy, its guard and its report (see the module docstring)."""

    def __init__(
        self,
        base: ServedModel,
        window: int = 500,
        tolerance: float = 0.02,
        z: float = 3.0,
        min_labels: int = 200,
        publish_every: int = 1,
        keep: int = 50_000,
        queue_size: int = 10_000,
        start_thread: bool = True,
    ) -> None:
        if window < 1 or min_labels < 1 or publish_every < 1 or keep < 1:
            raise ValueError("window, min_labels, publish_every and keep must be positive")
        if not 0 <= tolerance < 1:
            raise ValueError("tolerance must be in [0, 1)")
        if not z > 0:
            raise ValueError("z must be positive")
        self.window, self.tolerance, self.z, self.min_labels = window, tolerance, z, min_labels
        self.publish_every, self._keep = publish_every, keep
        self._features: OrderedDict[str, dict[str, float]] = OrderedDict()
        self._features_lock = threading.Lock()
        self._learn_lock = threading.Lock()  # learn() and restart() never interleave
        self.learned = self.unmatched = self.failed = self.fallbacks = 0
        self._restart(base)
        self._labels = QueueThread(self._learn_queued, "online-learning", queue_size, start_thread)

    # -- called by the handle -------------------------------------------------------------------
    def remember(self, request_id: str, features: dict[str, float]) -> None:
        """Keep a request's features until its label comes (the oldest go beyond ``keep``)."""
        if not request_id:
            return
        with self._features_lock:
            self._features[request_id] = features
            if len(self._features) > self._keep:
                self._features.popitem(last=False)

    def label(self, request_id: str, label: Any) -> None:
        """Queue a label for the learning thread (never blocks: a full queue skips and counts)."""
        self._labels.offer((request_id, label))

    def restart(self, base: ServedModel) -> None:
        """Learn from ``base`` (a new champion) from now on."""
        with self._learn_lock:
            self._restart(base)

    def stop(self) -> None:
        """End the learning thread (labels still queued are not learned); never blocks."""
        self._labels.stop()

    # -- the learning thread ----------------------------------------------------------------------
    def _learn_queued(self, item: tuple[str, Any]) -> None:
        try:
            self.learn(*item)
        except Exception as exc:  # a bad request or label must not stop learning
            self.failed += 1
            log.warning("online learning of %s skipped a label: %s", self.base.version, exc)

    def learn(self, request_id: str, label: Any) -> None:
        """Test-then-train on one labelled request: score the learning copy and the published
        version, learn, check the guard, and publish a copy every ``publish_every`` labels."""
        with self._features_lock:
            features = self._features.pop(request_id, None)
        if features is None:
            self.unmatched += 1
            return
        with self._learn_lock:
            regression = self._learning.task == "regression"
            online = self._learning.predict_one(features)[0]
            frozen = self.base.model.predict_one(features)[0]
            self._add(_score(online, label, regression), _score(frozen, label, regression))
            self._learning.learn_one(features, label)
            self.learned += 1
            self._since_publish += 1
            self._check_guard(regression)
            if not self.falling_back and self._since_publish >= self.publish_every:
                self._publish(self.base, self._learning.clone())

    # -- the guard and the report -------------------------------------------------------------------
    def _add(self, online: float, frozen: float) -> None:
        """Record both scores; keep the window's sums of the paired difference (online - frozen)."""
        if len(self._online_scores) == self.window:
            gone = self._online_scores[0] - self._base_scores[0]
            self._sum_d -= gone
            self._sum_d2 -= gone * gone
        self._online_scores.append(online)
        self._base_scores.append(frozen)
        d = online - frozen
        self._sum_d += d
        self._sum_d2 += d * d

    def _check_guard(self, regression: bool) -> None:
        n = len(self._online_scores)
        if n < min(self.min_labels, self.window):
            return
        gain, margin, standard_error = self._gain(regression)
        if not self.falling_back and gain < -margin and gain < -self.z * standard_error:
            self.falling_back, self.fallbacks = True, self.fallbacks + 1
            log.warning(
                "online learning of %s: serving the published version again: %s",
                self.base.version,
                self._comparison(regression),
            )
            self._publish(self.base, self.base.model)
        elif self.falling_back and gain >= 0:
            self.falling_back = False
            log.info(
                "online learning of %s: the learning copy serves again: %s",
                self.base.version,
                self._comparison(regression),
            )
            self._publish(self.base, self._learning.clone())

    def _gain(self, regression: bool) -> tuple[float, float, float]:
        """(mean paired gain of the learning copy, the tolerance as a margin, standard error)."""
        n = len(self._online_scores)
        gain = self._sum_d / n  # > 0: the learning copy scores higher (accuracy or error)
        if regression:  # scores are absolute errors: lower is better
            gain = -gain
            margin = self.tolerance * _mean(self._base_scores)
        else:
            margin = self.tolerance
        variance = max(self._sum_d2 / n - (self._sum_d / n) ** 2, 0.0) * n / max(n - 1, 1)
        return gain, margin, (variance / n) ** 0.5

    def _comparison(self, regression: bool) -> str:
        name = "mean absolute error" if regression else "accuracy"
        return (
            f"{name} over the last {len(self._online_scores)} labels: learning copy "
            f"{_mean(self._online_scores):.4f}, published version {_mean(self._base_scores):.4f} "
            f"(tolerance {self.tolerance:g}, z {self.z:g})"
        )

    def report(self) -> dict[str, Any]:
        """Counts and both models' recent score (accuracy, or mean absolute error for regressors)."""
        with self._learn_lock:
            regression = self._learning.task == "regression"
            key = "mae" if regression else "accuracy"
            return {
                "version": self.base.version,
                "learned": self.learned,
                "unmatched": self.unmatched,
                "skipped": self._labels.skipped,
                "failed": self.failed,
                "fallbacks": self.fallbacks,
                "serving": "published" if self.falling_back else "learned",
                "window": len(self._online_scores),
                f"online_{key}": _mean(self._online_scores),
                f"base_{key}": _mean(self._base_scores),
            }

    def snapshot(self) -> ModelAdapter:
        """A copy of the learned model, e.g. to register as a candidate for the gate."""
        with self._learn_lock:
            return self._learning.clone()

    def _restart(self, base: ServedModel) -> None:
        if not base.model.incremental:
            raise InvalidModel(
                f"{base.version} is a {base.model.kind} model, which cannot learn one label at "
                "a time: online learning needs an incremental (river) model"
            )
        learning = base.model.clone()
        self._learning: ModelAdapter = learning
        self._publish(base, learning.clone())
        self._online_scores: deque[float] = deque(maxlen=self.window)
        self._base_scores: deque[float] = deque(maxlen=self.window)
        self._sum_d = self._sum_d2 = 0.0
        self.falling_back = False

    def _publish(self, base: ServedModel, view: ModelAdapter) -> None:
        # one assignment, so a prediction never pairs one version with another's copy
        self.serving: tuple[ServedModel, ModelAdapter] = (base, view)
        self._since_publish = 0

    @property
    def base(self) -> ServedModel:
        """The published version this copy learns from."""
        return self.serving[0]

    @property
    def view(self) -> ModelAdapter:
        """The learned copy that serves now."""
        return self.serving[1]


def _score(prediction: Any, label: Any, regression: bool) -> float:
    if regression:
        return abs(float(prediction) - float(label))
    return float(normalise_label(prediction) == normalise_label(label))


def _mean(values: deque[float]) -> float | None:
    return sum(values) / len(values) if values else None
