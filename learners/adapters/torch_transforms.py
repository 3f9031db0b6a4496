"""Structural changes to a torch network that its saved weights depend on.

Compression changes a network's shape: low-rank factorisation replaces a ``Linear`` by two
thinner ones, dynamic int8 quantisation replaces it by a quantised module whose weights are not
plain tensors.  A compressed model is therefore stored as: the factory's architecture, the list
of transforms applied to it (recorded in the blob's metadata), and the resulting weights.
Loading re-applies the transforms to a fresh factory build, then loads the weights.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
>>> apply_transforms(net, [{"kind": "low_rank", "ranks": {"0": 2}}])
>>> type(net[0]).__name__, net[0].down.out_features
('LowRankLinear', 2)
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn


class LowRankLinear(nn.Module):
    """``Linear(in, out)`` as ``up(down(x))`` with ``down: in -> rank`` (no bias)."""

    def __init__(self, in_features: int, out_features: int, rank: int) -> None:
        super().__init__()
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


def _replace(module: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = module.get_submodule(parent_name) if parent_name else module
    setattr(parent, child, new)


def low_rank(module: nn.Module, ranks: dict[str, int]) -> None:
    """Replace each named ``Linear`` by a :class:`LowRankLinear` of the given rank (shape only)."""
    for name, rank in ranks.items():
        layer = module.get_submodule(name)
        if not isinstance(layer, nn.Linear):
            raise ValueError(f"{name} is a {type(layer).__name__}, not a Linear")
        _replace(module, name, LowRankLinear(layer.in_features, layer.out_features, int(rank)))


def _quantize_dynamic():
    with warnings.catch_warnings():  # eager-mode quantisation is deprecated in favour of torchao
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic
    return quantize_dynamic


def dynamic_int8(module: nn.Module) -> None:
    """Quantise every ``Linear`` (weights int8, activations quantised on the fly), in place."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _quantize_dynamic()(module, {nn.Linear}, dtype=torch.qint8, inplace=True)


def apply_transforms(module: nn.Module, transforms: list[dict[str, Any]]) -> None:
    for transform in transforms:
        kind = transform.get("kind")
        if kind == "low_rank":
            low_rank(module, {str(k): int(v) for k, v in transform["ranks"].items()})
        elif kind == "dynamic_int8":
            dynamic_int8(module)
        elif kind == "pruned":
            pass  # pruning zeroes weights; the shape is unchanged
        else:
            raise ValueError(f"unknown transform {kind!r}")


def _quantized_linears(module: nn.Module) -> dict[str, nn.Module]:
    return {
        name: m
        for name, m in module.named_modules()
        if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)
    }


def export_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Plain tensors for safetensors: quantised layers as int8 values, scale and zero point."""
    quantized = _quantized_linears(module)
    state = {
        key: value.detach().contiguous().clone()
        for key, value in module.state_dict().items()
        if isinstance(value, torch.Tensor)
        and not value.is_quantized
        and not any(key.startswith(name + ".") for name in quantized)
    }
    for name, layer in quantized.items():
        weight, bias = layer.weight(), layer.bias()
        state[f"{name}.qweight"] = weight.int_repr().contiguous()
        state[f"{name}.qscale"] = torch.tensor([weight.q_scale()], dtype=torch.float64)
        state[f"{name}.qzero"] = torch.tensor([weight.q_zero_point()], dtype=torch.int64)
        if bias is not None:
            state[f"{name}.bias"] = bias.detach().contiguous().clone()
    return state


def import_state(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """The inverse of :func:`export_state`, onto a module with the same transforms applied."""
    state = dict(state)
    for name, layer in _quantized_linears(module).items():
        try:
            values = state.pop(f"{name}.qweight")
            scale = float(state.pop(f"{name}.qscale")[0])
            zero = int(state.pop(f"{name}.qzero")[0])
        except KeyError:
            raise ValueError(f"quantised layer {name} has no weights in the blob") from None
        bias = state.pop(f"{name}.bias", None)
        weight = torch._make_per_tensor_quantized_tensor(values, scale, zero)
        layer.set_weight_bias(weight, bias)
    expected = set(export_state(module)) - {
        k for name in _quantized_linears(module) for k in (f"{name}.qweight", f"{name}.bias")
    }
    expected = {k for k in expected if not k.endswith((".qscale", ".qzero"))}
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ValueError(f"weights do not fit the architecture: missing {missing}, extra {extra}")
    with torch.no_grad():  # plain tensors onto plain layers (quantised ones were set above)
        for key, value in state.items():
            owner_name, _, attr = key.rpartition(".")
            current = getattr(module.get_submodule(owner_name) if owner_name else module, attr)
            if current.shape != value.shape:
                raise ValueError(
                    f"{key} has shape {tuple(value.shape)}, expected {tuple(current.shape)}"
                )
            current.copy_(value)
