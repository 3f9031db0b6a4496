"""Supervised training of a torch module on CPU: the one loop every torch strategy uses.

Mini-batch SGD or Adam with a one-cycle, cyclic or constant learning rate; layers frozen by name
pattern or "all but the head"; optional augmentation hook; early stopping on a validation slice
(the best weights are kept); bfloat16 autocast where a quick probe shows it is faster on this
CPU.  Targets are class indices (cross-entropy), floats (regression, MSE) or soft class
probabilities (distillation, KL divergence at a temperature).

>>> import torch
>>> from learners.zoo import mlp
>>> _ = torch.manual_seed(0)
>>> X = torch.randn(512, 4)
>>> y = (X[:, 0] > 0).long()
>>> net = mlp(4, 2, hidden=[16])
>>> net.norm.fit(X)
>>> report = train(net, X, y, "classification", TrainConfig(epochs=15, bf16="off"))
>>> report.epochs_run > 0, float((net(X).argmax(1) == y).float().mean()) > 0.9
(True, True)
"""

from __future__ import annotations

import copy
import fnmatch
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
Progress = Callable[[int, int, float], None]  # (epoch, epochs, validation loss)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    optimizer: str = "adam"  # "adam" or "sgd" (momentum 0.9)
    schedule: str = "one_cycle"  # "one_cycle", "cyclic" or "constant"
    weight_decay: float = 0.0
    patience: int = 4  # epochs without validation improvement before stopping
    bf16: str = "auto"  # "auto" (probe), "on", "off"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.schedule not in ("one_cycle", "cyclic", "constant"):
            raise ValueError(
                f"schedule must be 'one_cycle', 'cyclic' or 'constant', got {self.schedule!r}"
            )
        if self.bf16 not in ("auto", "on", "off"):
            raise ValueError(f"bf16 must be 'auto', 'on' or 'off', got {self.bf16!r}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("epochs, batch_size and lr must be positive")


@dataclass(frozen=True)
class TrainReport:
    epochs_run: int
    stopped_early: bool
    best_validation_loss: float | None
    samples_per_s: float
    bf16: bool
    trainable_parameters: int
    frozen_parameters: int

    def to_dict(self) -> dict:
        return asdict(self)


def freeze(module: nn.Module, patterns: Sequence[str] | str | None) -> list[str]:
    """Freeze parameters whose names match any fnmatch pattern, or all but the last child
    (``"all_but_head"``).  Returns the frozen parameter names."""
    if not patterns:
        return []
    if patterns == "all_but_head":
        head = list(dict(module.named_children()))[-1]
        match = lambda name: not name.startswith(head + ".")  # noqa: E731
    else:
        pats = [patterns] if isinstance(patterns, str) else list(patterns)
        match = lambda name: any(fnmatch.fnmatch(name, p) for p in pats)  # noqa: E731
    frozen = []
    for name, param in module.named_parameters():
        if match(name):
            param.requires_grad_(False)
            frozen.append(name)
    if frozen and not any(p.requires_grad for p in module.parameters()):
        raise ValueError(f"freezing {patterns!r} leaves nothing to train")
    return frozen


def _loss(
    output: torch.Tensor, target: torch.Tensor, task: str, temperature: float
) -> torch.Tensor:
    if task == "regression":
        return F.mse_loss(output.squeeze(-1), target)
    if task == "soft":  # distillation: match the teacher's softened distribution
        log_p = F.log_softmax(output / temperature, dim=-1)
        return F.kl_div(log_p, target, reduction="batchmean") * temperature**2
    return F.cross_entropy(output, target)


def bf16_helps(module: nn.Module, X: torch.Tensor, batch_size: int) -> bool:
    """Time a forward+backward in float32 and in bfloat16 autocast; True if bf16 is faster."""
    batch = X[:batch_size]
    timings = {}
    for use in (False, True):
        best = math.inf
        for _ in range(3):
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use):
                out = module(batch)
            out.float().sum().backward()
            best = min(best, time.perf_counter() - start)
        timings[use] = best
    module.zero_grad(set_to_none=True)
    return timings[True] < 0.9 * timings[False]


def train(
    module: nn.Module,
    X: torch.Tensor,
    target: torch.Tensor,
    task: str,
    config: TrainConfig = TrainConfig(),
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
    augment: Augment | None = None,
    temperature: float = 1.0,
    progress: Progress | None = None,
) -> TrainReport:
    """Train ``module`` in place.  ``task``: "classification", "regression" or "soft"."""
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the module has no trainable parameters")
    generator = torch.Generator().manual_seed(config.seed)
    if config.optimizer == "adam":
        optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.SGD(
            params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay
        )
    steps_per_epoch = max(1, math.ceil(len(X) / config.batch_size))
    total = steps_per_epoch * config.epochs
    if config.schedule == "one_cycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=total)
    elif config.schedule == "cyclic":
        scheduler = torch.optim.lr_scheduler.CyclicLR(
            optimizer,
            base_lr=config.lr / 10,
            max_lr=config.lr,
            step_size_up=max(1, steps_per_epoch * 2),
            cycle_momentum=config.optimizer == "sgd",
        )
    else:
        scheduler = None
    module.train()
    use_bf16 = config.bf16 == "on" or (
        config.bf16 == "auto" and bf16_helps(module, X, config.batch_size)
    )
    best_loss, best_state, stale, epochs_run, seen = math.inf, None, 0, 0, 0
    start = time.perf_counter()
    for epoch in range(config.epochs):
        epochs_run += 1
        order = torch.randperm(len(X), generator=generator)
        for i in range(0, len(X), config.batch_size):
            idx = order[i : i + config.batch_size]
            batch = X[idx] if augment is None else augment(X[idx], generator)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                output = module(batch)
            loss = _loss(output.float(), target[idx], task, temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            seen += len(idx)
        if validation is None:
            continue
        val_loss = evaluate_loss(module, *validation, task, temperature)
        if progress is not None:
            progress(epoch + 1, config.epochs, val_loss)
        if val_loss < best_loss - 1e-6:
            best_loss, best_state, stale = val_loss, copy.deepcopy(module.state_dict()), 0
        else:
            stale += 1
            if stale >= config.patience:
                break
        module.train()
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    return TrainReport(
        epochs_run=epochs_run,
        stopped_early=epochs_run < config.epochs,
        best_validation_loss=None if best_state is None else float(best_loss),
        samples_per_s=seen / max(time.perf_counter() - start, 1e-9),
        bf16=use_bf16,
        trainable_parameters=sum(p.numel() for p in params),
        frozen_parameters=frozen,
    )


@torch.no_grad()
def evaluate_loss(
    module: nn.Module, X: torch.Tensor, target: torch.Tensor, task: str, temperature: float = 1.0
) -> float:
    module.eval()
    return float(_loss(module(X).float(), target, task, temperature))
