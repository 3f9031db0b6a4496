"""Small torch networks for tabular models, with their preprocessing inside.

A torch model in the registry is its weights (safetensors) plus the import path of a factory
that builds the architecture, e.g. ``"learners.zoo:mlp"`` with ``{"n_features": 6, ...}``.
These factories are the built-in ones; users name their own (see
:data:`learners.adapters.torch_module.FACTORY_ALLOWLIST_ENV`).

:class:`TabularNet` standardises its inputs with buffers that are part of its state dict, so the
scaling travels with the weights; a missing feature (nan) is imputed with the training mean.

>>> import torch
>>> net = mlp(n_features=3, n_outputs=2, hidden=[8])
>>> net.norm.fit(torch.randn(100, 3) * 5 + 2)
>>> net(torch.tensor([[1.0, float("nan"), 3.0]])).shape
torch.Size([1, 2])
>>> [name for name, _ in net.named_children()]
['norm', 'body', 'head']
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Standardize(nn.Module):
    """(x - mean) / std with nan -> mean; mean and std are buffers, so they are saved."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    @torch.no_grad()
    def fit(self, X: torch.Tensor) -> None:
        X = torch.as_tensor(X, dtype=torch.float32)
        mean = torch.nanmean(X, dim=0)
        centred = torch.where(torch.isnan(X), torch.zeros_like(X), X - mean)
        count = (~torch.isnan(X)).sum(dim=0).clamp(min=1)
        std = torch.sqrt((centred**2).sum(dim=0) / count)
        self.mean.copy_(torch.nan_to_num(mean, nan=0.0))
        self.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.where(torch.isnan(x), self.mean, x)
        return (x - self.mean) / self.std


class TabularNet(nn.Module):
    """norm -> body (hidden layers) -> head: "all but the head" is a natural freeze point."""

    def __init__(self, n_features: int, n_outputs: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.norm = Standardize(n_features)
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.norm(x)))


def mlp(
    n_features: int, n_outputs: int, hidden: Sequence[int] = (32, 16), seed: int = 0
) -> TabularNet:
    """A multilayer perceptron; ``n_outputs`` = number of classes, or 1 for regression."""
    torch.manual_seed(seed)
    return TabularNet(int(n_features), int(n_outputs), [int(h) for h in hidden])
