"""Online / incremental update: continue the champion on the new data, with replay.

river models learn each new row once (``learn_one``, in time order); torch models take a few SGD
passes at a small constant learning rate; the built-in linear model a few SGD passes.  A replay
sample of the reference data is mixed in (``replay_fraction`` of the training rows), so the
model adapts to the new regime without forgetting the old one where it still holds.

>>> import numpy as np
>>> from learners.adapters.linear import LinearAdapter
>>> from learners.data import Dataset
>>> rng = np.random.default_rng(1)
>>> X = rng.normal(size=(600, 2)).astype("float32")
>>> y = np.where(X[:, 1] > 0, "1", "0").astype(object)          # the concept now follows x2
>>> champion = LinearAdapter(["a", "b"], [3.0, 0.0])             # ... the champion uses x1
>>> candidate = OnlineUpdate(epochs=3).propose(champion, UpdateData(Dataset(X, y, ("a", "b"), np.arange(600.0))))
>>> float((candidate.model.predict(X) == y).mean()) > 0.85
True
"""

from __future__ import annotations

from learners.adapters.base import ModelAdapter
from learners.strategies.base import Candidate, UpdateData, UpdateStrategy


class OnlineUpdate(UpdateStrategy):
    name = "online"

    def __init__(self, replay_fraction: float = 0.2, epochs: int = 2, lr: float = 0.01) -> None:
        if not 0 <= replay_fraction < 1:
            raise ValueError("replay_fraction must be in [0, 1)")
        self.replay_fraction, self.epochs, self.lr = replay_fraction, epochs, lr

    def _propose(self, champion: ModelAdapter, data: UpdateData) -> Candidate:
        model = champion.clone()
        training = data.with_replay(self.replay_fraction)
        if model.kind == "torch":
            from learners.torch_training import TrainConfig

            model.train_config = TrainConfig(
                epochs=self.epochs, optimizer="sgd", schedule="constant", lr=self.lr, bf16="off"
            )
        elif model.kind == "linear":
            model.epochs = self.epochs
        data.say(f"online update on {len(training)} rows ({len(data.recent)} new)")
        model.fit(training)
        report = {"rows": len(training), "new_rows": len(data.recent), "epochs": self.epochs}
        return Candidate(model, self.name, report, trained_on=training)
