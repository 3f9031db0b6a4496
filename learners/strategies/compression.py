"""Compression of torch models: dynamic int8 quantisation, magnitude pruning, low-rank layers.

Each returns a candidate like any other strategy (it goes through the gate) and reports what
it changed: blob size, prediction latency per 1,000 rows and validation score, before and after.

- :class:`Quantize`: every ``Linear`` gets int8 weights with activations quantised on the fly
  (torch's dynamic quantisation); no training.
- :class:`Prune`: the ``amount`` smallest-magnitude weights of each ``Linear`` are set to zero
  (global per layer, L1); the blob stays dense, the report gives the sparsity.
- :class:`LowRank`: each ``Linear`` whose rank can drop to ``rank_fraction`` of its smaller side
  is replaced by two thinner ones from its truncated SVD, then briefly fine-tuned.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from learners.adapters.base import ModelAdapter
from learners.adapters.torch_module import TorchAdapter
from learners.adapters.torch_transforms import LowRankLinear, dynamic_int8, low_rank
from learners.scoring import score
from learners.strategies.base import Candidate, UpdateData, UpdateStrategy, require_torch
from learners.torch_training import TrainConfig, train


def latency_ms_per_1k(model: ModelAdapter, X: np.ndarray, repeats: int = 5) -> float:
    rows = np.resize(X, (1000, X.shape[1])).astype(np.float32)
    model.predict(rows)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(rows)
        best = min(best, time.perf_counter() - start)
    return best * 1000


def compression_report(before: ModelAdapter, after: ModelAdapter, data: UpdateData) -> dict:
    _, validation = data.split_validation()
    Xb, Xa = before.prepare(validation), after.prepare(validation)
    size_b, size_a = len(before.to_bytes()), len(after.to_bytes())
    lat_b, lat_a = latency_ms_per_1k(before, Xb), latency_ms_per_1k(after, Xa)
    score_b, score_a = score(before, validation), score(after, validation)
    return {
        "size_bytes": {"before": size_b, "after": size_a, "ratio": round(size_a / size_b, 3)},
        "latency_ms_per_1k": {
            "before": round(lat_b, 3),
            "after": round(lat_a, 3),
            "ratio": round(lat_a / lat_b, 3),
        },
        "validation_score": {
            "before": round(score_b, 4),
            "after": round(score_a, 4),
            "change": round(score_a - score_b, 4),
        },
    }


class Quantize(UpdateStrategy):
    name = "quantize"

    def _propose(self, champion: ModelAdapter, data: UpdateData) -> Candidate:
        model = require_torch(champion, self.name).clone()
        dynamic_int8(model.module)
        model.transforms.append({"kind": "dynamic_int8"})
        return Candidate(model, self.name, compression_report(champion, model, data))


class Prune(UpdateStrategy):
    name = "prune"

    def __init__(self, amount: float = 0.5) -> None:
        if not 0 < amount < 1:
            raise ValueError("amount must be in (0, 1)")
        self.amount = amount

    def _propose(self, champion: ModelAdapter, data: UpdateData) -> Candidate:
        model = require_torch(champion, self.name).clone()
        zeros = total = 0
        for module in model.module.modules():
            if isinstance(module, nn.Linear):
                prune.l1_unstructured(module, "weight", amount=self.amount)
                prune.remove(module, "weight")  # make it permanent: plain weights with zeros
                zeros += int((module.weight == 0).sum())
                total += module.weight.numel()
        model.transforms.append({"kind": "pruned", "amount": self.amount})
        report = compression_report(champion, model, data)
        report["sparsity"] = round(zeros / max(total, 1), 4)
        return Candidate(model, self.name, report)


class LowRank(UpdateStrategy):
    name = "low_rank"

    def __init__(self, rank_fraction: float = 0.5, recover_epochs: int = 5) -> None:
        if not 0 < rank_fraction < 1:
            raise ValueError("rank_fraction must be in (0, 1)")
        self.rank_fraction, self.recover_epochs = rank_fraction, recover_epochs

    def _propose(self, champion: ModelAdapter, data: UpdateData) -> Candidate:
        model: TorchAdapter = require_torch(champion, self.name).clone()
        layers = {
            name: m
            for name, m in model.module.named_modules()
            if isinstance(m, nn.Linear)
            and int(min(m.in_features, m.out_features) * self.rank_fraction) >= 1
            and int(min(m.in_features, m.out_features) * self.rank_fraction)
            * (m.in_features + m.out_features)
            < m.in_features * m.out_features
        }
        ranks = {
            name: int(min(m.in_features, m.out_features) * self.rank_fraction)
            for name, m in layers.items()
        }
        weights = {name: (m.weight.detach().clone(), m.bias) for name, m in layers.items()}
        low_rank(model.module, ranks)
        with torch.no_grad():
            for name, rank in ranks.items():
                W, bias = weights[name]
                U, S, Vh = torch.linalg.svd(W, full_matrices=False)
                root = S[:rank].sqrt()
                layer: LowRankLinear = model.module.get_submodule(name)
                layer.down.weight.copy_(root[:, None] * Vh[:rank])
                layer.up.weight.copy_(U[:, :rank] * root[None, :])
                if bias is not None:
                    layer.up.bias.copy_(bias.detach())
                else:
                    layer.up.bias.zero_()
        model.transforms.append({"kind": "low_rank", "ranks": ranks})
        if self.recover_epochs and ranks:
            train_part, validation = data.split_validation()
            task = "regression" if model.task == "regression" else "classification"
            train(
                model.module,
                torch.as_tensor(model.prepare(train_part)),
                model.targets(train_part),
                task,
                TrainConfig(epochs=self.recover_epochs, lr=1e-3, schedule="constant", bf16="off"),
                validation=(torch.as_tensor(model.prepare(validation)), model.targets(validation)),
            )
        report = compression_report(champion, model, data)
        report["ranks"] = ranks
        return Candidate(model, self.name, report, trained_on=data.recent)
