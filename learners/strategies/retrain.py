"""Full retraining from recent data plus a reference sample: a fresh model, same architecture.

For torch the factory builds the network anew (its normaliser refitted on the new data); for
river, ``clone()`` gives the same pipeline with fresh state; the built-in linear model starts
from zero.  ``reference_fraction`` of the training rows come from the reference sample, so the
new model still knows the old regime where it holds.  The learner runs this on an alarm or on a
schedule (the policy's ``periodic_retrain_s``).

>>> import numpy as np
>>> from learners.adapters.linear import LinearAdapter
>>> from learners.data import Dataset
>>> rng = np.random.default_rng(2)
>>> X = rng.normal(size=(500, 2)).astype("float32")
>>> y = np.where(X[:, 0] - X[:, 1] > 0, "1", "0").astype(object)
>>> candidate = Retrain().propose(LinearAdapter(["a", "b"], [0.0, 5.0]),
...                               UpdateData(Dataset(X, y, ("a", "b"), np.arange(500.0))))
>>> float((candidate.model.predict(X) == y).mean()) > 0.9
True
"""

from __future__ import annotations

from learners.adapters.base import ModelAdapter
from learners.strategies.base import Candidate, StrategyNotApplicable, UpdateData, UpdateStrategy


def fresh_model(champion: ModelAdapter) -> ModelAdapter:
    """An untrained model of the champion's kind and shape."""
    if champion.kind == "torch":
        return champion.fresh()
    if champion.kind == "river":
        from learners.adapters.river_model import RiverAdapter

        return RiverAdapter(
            champion.model.clone(), champion.task, champion.classes, champion.feature_names
        )
    if champion.kind == "linear":
        return type(champion).untrained(champion.feature_names, classes=champion.classes)
    raise StrategyNotApplicable(f"cannot build a fresh {champion.kind} model")


class Retrain(UpdateStrategy):
    name = "retrain"

    def __init__(self, reference_fraction: float = 0.3, epochs: int = 30) -> None:
        if not 0 <= reference_fraction < 1:
            raise ValueError("reference_fraction must be in [0, 1)")
        self.reference_fraction, self.epochs = reference_fraction, epochs

    def _propose(self, champion: ModelAdapter, data: UpdateData) -> Candidate:
        model = fresh_model(champion)
        training = data.with_replay(self.reference_fraction)
        if model.kind == "torch":
            from learners.torch_training import TrainConfig

            model.train_config = TrainConfig(epochs=self.epochs, bf16="off")
        data.say(f"retraining a fresh {model.kind} model on {len(training)} rows")
        passes = 1 if model.kind != "river" else 2
        for _ in range(passes):
            model.fit(training)
        report = {"rows": len(training), "reference_rows": len(training) - len(data.recent)}
        return Candidate(model, self.name, report, trained_on=training)
