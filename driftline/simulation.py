"""A simulated model and its traffic, with scenes switched on cue (used by the demo and tests).

The concept never changes: the label is ``x2 > 1.5 * sin(2 * x1)`` (plus noise).  The champion,
a small torch network trained at start-up (nothing is downloaded), only ever saw traffic with
``x1`` near 0, where the boundary is nearly the line ``x2 = 3 * x1``.  Scenes:

- ``normal``: ``x1 ~ N(0, 0.5)``, the training regime;
- ``shifted``: traffic moves to ``x1 ~ N(2.2, 0.3)`` (a new market, a new device): the network
  extrapolates its line and is wrong about half the time.  Fine-tuning on the new region, with
  the old one replayed, fixes it without forgetting;
- ``noisy_labels``: the shifted traffic, but an upstream labelling bug flips half the labels:
  no model can learn that, and the gate must refuse to try.

``x3`` and ``x4`` are noise features the model also sees.

``task`` picks the kind of model: ``"binary"`` (as above), ``"multiclass"`` (three classes: below,
near or above the boundary) or ``"regression"`` (the target is ``x2 - 1.5 * sin(2 * x1)``, in the
noisy-label scene with large random errors).

>>> scenario = DriftingScenario(seed=1)
>>> champion = scenario.train_champion(n=3000)
>>> accuracy = lambda scene: scenario.accuracy(champion, scene, 1000)
>>> accuracy("normal") > 0.85, accuracy("shifted") < 0.7
(True, True)
"""

from __future__ import annotations

import math
import random

from learners.adapters.base import ModelAdapter
from learners.data import Dataset

FEATURES = ("x1", "x2", "x3", "x4")
SCENES = ("normal", "shifted", "noisy_labels")
FACTORY = "learners.zoo:mlp"


class DriftingScenario:
    def __init__(self, seed: int = 7, task: str = "binary") -> None:
        if task not in ("binary", "multiclass", "regression"):
            raise ValueError(f"unknown task {task!r}")
        self.rng = random.Random(seed)
        self.task = task

    @property
    def classes(self) -> list[str]:
        return {"binary": ["0", "1"], "multiclass": ["0", "1", "2"], "regression": []}[self.task]

    def sample(self, scene: str = "normal") -> tuple[dict[str, float], str | float]:
        """One request's features and its ground truth in ``scene``."""
        g = self.rng.gauss
        if scene == "normal":
            x1 = g(0.0, 0.35)
            x2 = g(0.0, 1.2)
        elif scene in ("shifted", "noisy_labels"):
            x1 = g(1.6, 0.25)
            x2 = g(0.0, 1.2)
        else:
            raise ValueError(f"unknown scene {scene!r}; choose one of {SCENES}")
        x = {"x1": x1, "x2": x2, "x3": g(0.0, 1.0), "x4": g(0.0, 1.0)}
        margin = x2 + g(0.0, 0.25) - 1.5 * math.sin(2.0 * x1)
        noisy = scene == "noisy_labels" and self.rng.random() < 0.5
        if self.task == "regression":
            return x, margin + (g(0.0, 3.0) if noisy else 0.0)
        if self.task == "multiclass":
            label = 0 if margin < -0.6 else (1 if margin < 0.6 else 2)
            return x, str(self.rng.randrange(3) if noisy else label)
        label = margin > 0
        return x, "1" if label != noisy else "0"

    def latency_ms(self) -> float:
        return self.rng.lognormvariate(2.3, 0.35)  # median ~10 ms

    def dataset(self, scene: str, n: int) -> Dataset:
        rows = [self.sample(scene) for _ in range(n)]
        return Dataset.from_records(
            [r for r, _ in rows],
            [y for _, y in rows],
            feature_names=FEATURES,
            regression=self.task == "regression",
        )

    def train_champion(self, n: int = 4000, hidden: tuple[int, ...] = (32, 16)):
        """A torch MLP (normaliser inside) trained on the normal scene."""
        from learners.adapters.torch_module import TorchAdapter
        from learners.torch_training import TrainConfig

        model = TorchAdapter.build(
            FACTORY,
            {
                "n_features": len(FEATURES),
                "n_outputs": max(1, len(self.classes)),
                "hidden": list(hidden),
            },
            task=self.task,
            classes=self.classes,
            feature_names=FEATURES,
        )
        model.train_config = TrainConfig(epochs=25, lr=5e-3, bf16="off")
        model.fit(self.dataset("normal", n))
        return model

    def accuracy(self, model: ModelAdapter, scene: str, n: int = 1000) -> float:
        """Accuracy, or for regression minus the mean absolute error (higher is better)."""
        from learners.scoring import score

        return score(model, self.dataset(scene, n))
