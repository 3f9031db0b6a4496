"""Knowledge distillation: a (smaller) torch student learns from a teacher's soft targets.

The teacher is ``UpdateData.teacher`` if given (a bigger model trained elsewhere), else the
champion.  The student comes from ``student_factory`` / ``student_kwargs`` (default: the
champion's factory with every hidden layer ``shrink`` times narrower).  Targets are the
teacher's class probabilities at ``temperature``, blended with the true labels by ``alpha``
(``alpha=1``: teacher only); the loss is the KL divergence at that temperature, scaled by T².
For regression the student fits ``alpha * teacher + (1 - alpha) * label`` by squared error.
"""

from __future__ import annotations

import numpy as np
import torch

from learners.adapters.base import ModelAdapter
from learners.adapters.torch_module import TorchAdapter
from learners.strategies.base import Candidate, UpdateData, UpdateStrategy, require_torch
from learners.torch_training import TrainConfig, train


class Distill(UpdateStrategy):
    name = "distill"

    def __init__(
        self,
        student_factory: str | None = None,
        student_kwargs: dict | None = None,
        shrink: int = 2,
        temperature: float = 3.0,
        alpha: float = 0.7,
        epochs: int = 40,
        lr: float = 3e-3,
        replay_fraction: float = 0.3,
    ) -> None:
        if temperature <= 0 or not 0 <= alpha <= 1:
            raise ValueError("temperature must be > 0 and alpha in [0, 1]")
        self.student_factory, self.student_kwargs, self.shrink = (
            student_factory,
            student_kwargs,
            shrink,
        )
        self.temperature, self.alpha, self.epochs, self.lr = temperature, alpha, epochs, lr
        self.replay_fraction = replay_fraction

    def student_for(self, champion: TorchAdapter) -> TorchAdapter:
        factory = self.student_factory or champion.factory
        kwargs = dict(self.student_kwargs or champion.factory_kwargs)
        if self.student_kwargs is None and "hidden" in kwargs:
            kwargs["hidden"] = [max(2, int(h) // self.shrink) for h in kwargs["hidden"]]
        return TorchAdapter.build(
            factory, kwargs, champion.task, champion.classes, champion.feature_names
        )

    def _propose(self, champion: ModelAdapter, data: UpdateData) -> Candidate:
        champion = require_torch(champion, self.name)
        teacher = data.teacher or champion
        student = self.student_for(champion)
        train_part, validation = data.split_validation()
        training = UpdateData(train_part, reference=data.reference, seed=data.seed).with_replay(
            self.replay_fraction
        )
        X = student.prepare(training)
        student.module.norm.fit(torch.as_tensor(X)) if hasattr(student.module, "norm") else None
        config = TrainConfig(epochs=self.epochs, lr=self.lr, bf16="off")
        if student.task == "regression":
            target = self.alpha * teacher.predict(teacher.prepare(training)) + (
                1 - self.alpha
            ) * training.y.astype(np.float64)
            args = (torch.as_tensor(target.astype(np.float32)), "regression")
            val_target = torch.as_tensor(validation.y.astype(np.float32))
        else:
            logits = teacher.logits(teacher.prepare(training)) if teacher.kind == "torch" else None
            soft = (
                torch.softmax(logits / self.temperature, dim=-1)
                if logits is not None
                else torch.as_tensor(
                    teacher.predict_proba(teacher.prepare(training)), dtype=torch.float32
                )
            )
            hard = torch.nn.functional.one_hot(student.targets(training), len(student.classes))
            args = (self.alpha * soft + (1 - self.alpha) * hard.float(), "soft")
            val_target = torch.nn.functional.one_hot(
                student.targets(validation), len(student.classes)
            ).float()
        val = (torch.as_tensor(student.prepare(validation)), val_target)
        report = train(
            student.module,
            torch.as_tensor(X),
            *args,
            config=config,
            validation=val,
            temperature=self.temperature,
        )
        details = {
            **report.to_dict(),
            "teacher_parameters": teacher.n_parameters(),
            "student_parameters": student.n_parameters(),
            "temperature": self.temperature,
            "alpha": self.alpha,
        }
        return Candidate(student, self.name, details, trained_on=training)
