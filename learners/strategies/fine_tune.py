"""Fine-tuning a torch model: frozen layers, Adam or SGD, one-cycle or cyclic rate, early stop.

``freeze`` is ``"all_but_head"`` (only the last child module trains: cheap, keeps the learned
features), a list of fnmatch patterns over parameter names (``["body.0.*"]``), or ``None``.
``augment`` names an augmentation: ``"noise:<sd>"`` adds Gaussian noise of ``sd`` feature
standard deviations to each batch, or an import path ``"pkg.mod:fn"`` (allowed like model
factories) to a function ``(batch, generator) -> batch``.  Early stopping watches the loss on
a validation slice (the newest 20% of the recent data unless one is given) and keeps the best
weights.  bfloat16 autocast is used where a quick probe on this CPU finds it faster.
"""

from __future__ import annotations

import torch

from learners.adapters.base import InvalidModel, ModelAdapter
from learners.strategies.base import Candidate, UpdateData, UpdateStrategy, require_torch
from learners.torch_training import Augment, TrainConfig, freeze, train


def gaussian_noise(sd: float) -> Augment:
    def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        scale = torch.nan_to_num(batch.std(dim=0, keepdim=True), nan=1.0)
        noise = torch.randn(batch.shape, generator=generator) * scale * sd
        return batch + noise

    return augment


def augmentation(spec: str | None) -> Augment | None:
    if not spec:
        return None
    if spec.startswith("noise:"):
        return gaussian_noise(float(spec.removeprefix("noise:")))
    from learners.adapters.torch_module import import_factory

    try:
        return import_factory(spec)
    except InvalidModel as exc:
        raise ValueError(f"augmentation {spec!r}: {exc}") from None


class FineTune(UpdateStrategy):
    name = "fine_tune"

    def __init__(
        self,
        freeze: str | list[str] | None = "all_but_head",
        optimizer: str = "adam",
        schedule: str = "one_cycle",
        epochs: int = 30,
        lr: float = 3e-3,
        batch_size: int = 64,
        patience: int = 4,
        bf16: str = "auto",
        augment: str | None = None,
        replay_fraction: float = 0.2,
    ) -> None:
        self.freeze, self.augment, self.replay_fraction = freeze, augment, replay_fraction
        self.config = TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            schedule=schedule,
            patience=patience,
            bf16=bf16,
        )
        self._augment = augmentation(augment)

    def _propose(self, champion: ModelAdapter, data: UpdateData) -> Candidate:
        model = require_torch(champion, self.name).clone()
        train_part, validation = data.split_validation()
        training = UpdateData(train_part, reference=data.reference, seed=data.seed).with_replay(
            self.replay_fraction
        )
        frozen = freeze(model.module, self.freeze)
        X, y = torch.as_tensor(model.prepare(training)), model.targets(training)
        val = (torch.as_tensor(model.prepare(validation)), model.targets(validation))
        task = "regression" if model.task == "regression" else "classification"

        def progress(epoch: int, epochs: int, loss: float) -> None:
            data.say(f"fine-tune epoch {epoch}/{epochs}: validation loss {loss:.4f}")

        report = train(model.module, X, y, task, self.config, val, self._augment, progress=progress)
        for param in model.module.parameters():
            param.requires_grad_(True)  # frozen only for this training
        details = {**report.to_dict(), "frozen": frozen, "rows": len(training)}
        return Candidate(model, self.name, details, trained_on=training)
