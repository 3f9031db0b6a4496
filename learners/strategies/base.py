"""One interface for every way of making a new model: champion + data -> candidate.

A strategy never touches Kafka, Redis or the registry: it gets the champion and an
:class:`UpdateData` (recent labelled data to learn from, a validation slice, an optional
reference sample to replay so the model does not forget, an optional teacher) and returns a
:class:`Candidate`: the new model, what was done, and the rows it was trained on (the privacy
probe needs them).  The gate decides whether the candidate serves.

Strategies are built from specs, ``{"name": "fine_tune", "freeze": "all_but_head"}``, through
:data:`STRATEGIES`, so policies can name them in a config file.
"""

from __future__ import annotations

import importlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from learners.adapters.base import ModelAdapter
from learners.data import Dataset


class StrategyNotApplicable(ValueError):
    """This strategy cannot update this kind of model (e.g. fine-tuning a river model)."""


@dataclass(frozen=True)
class UpdateData:
    recent: Dataset  # what the candidate should learn: labelled data from the new regime
    validation: Dataset | None = None  # for early stopping and member selection (not the gate's)
    reference: Dataset | None = None  # older known-good data to replay against forgetting
    teacher: ModelAdapter | None = None  # distillation: the model to learn from
    progress: Callable[[str], None] | None = None
    seed: int = 0

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress(text)

    def with_replay(self, fraction: float) -> Dataset:
        """``recent`` plus a sample of ``reference`` worth ``fraction`` of the result."""
        if self.reference is None or fraction <= 0 or len(self.reference) == 0:
            return self.recent
        n = int(len(self.recent) * fraction / max(1e-9, 1.0 - fraction))
        replay = self.reference.sample(n, seed=self.seed).reorder(self.recent.feature_names)
        return replay.concat(self.recent)

    def split_validation(self, fraction: float = 0.2) -> tuple[Dataset, Dataset]:
        """(train, validation): ``validation`` if given, else the newest part of ``recent``."""
        if self.validation is not None and len(self.validation):
            return self.recent, self.validation
        return self.recent.split(fraction)


@dataclass
class Candidate:
    model: ModelAdapter
    strategy: str
    report: dict[str, Any] = field(default_factory=dict)
    trained_on: Dataset | None = None
    seconds: float = 0.0


class UpdateStrategy(ABC):
    name: ClassVar[str]

    def propose(self, champion: ModelAdapter, data: UpdateData) -> Candidate:
        """Build the candidate and time it."""
        start = time.perf_counter()
        candidate = self._propose(champion, data)
        candidate.seconds = time.perf_counter() - start
        return candidate

    @abstractmethod
    def _propose(self, champion: ModelAdapter, data: UpdateData) -> Candidate: ...

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def require_torch(model: ModelAdapter, strategy: str):
    if model.kind != "torch":
        raise StrategyNotApplicable(f"{strategy} needs a torch model, this one is {model.kind}")
    return model


STRATEGIES: dict[str, str] = {
    "online": "learners.strategies.online:OnlineUpdate",
    "fine_tune": "learners.strategies.fine_tune:FineTune",
    "retrain": "learners.strategies.retrain:Retrain",
    "distill": "learners.strategies.distill:Distill",
    "ensemble": "learners.strategies.ensemble:Ensemble",
    "quantize": "learners.strategies.compression:Quantize",
    "prune": "learners.strategies.compression:Prune",
    "low_rank": "learners.strategies.compression:LowRank",
}


def strategy_from_spec(spec: dict[str, Any] | str) -> UpdateStrategy:
    """``"retrain"`` or ``{"name": "fine_tune", "epochs": 20, ...}`` -> a strategy."""
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = spec.pop("name", None)
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)}")
    module, _, cls = STRATEGIES[name].partition(":")
    try:
        return getattr(importlib.import_module(module), cls)(**spec)
    except TypeError as exc:
        raise ValueError(f"strategy {name!r}: {exc}") from None
