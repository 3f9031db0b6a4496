"""Model adapters: one protocol (:class:`ModelAdapter`) over torch, river and built-in models.

| name       | module            | model                                    | blob                    |
|------------|-------------------|------------------------------------------|-------------------------|
| ``linear`` | ``linear``        | built-in binary logistic regression      | JSON                    |
| ``torch``  | ``torch_module``  | any ``nn.Module`` from an allowed factory | safetensors + metadata  |
| ``river``  | ``river_model``   | river estimators and pipelines           | restricted pickle       |
| ``ensemble``| ``ensemble``     | average, stacking or dynamic selection   | JSON embedding members  |

torch and river are imported only when a model of theirs is built or loaded.
"""

from __future__ import annotations

import importlib

from learners.adapters.base import (
    ADAPTERS,
    InvalidModel,
    ModelAdapter,
    ModelDescription,
    adapter_from_bytes,
    register_adapter,
)
from learners.adapters.ensemble import EnsembleAdapter
from learners.adapters.linear import LinearAdapter

_OPTIONAL = {"torch": "learners.adapters.torch_module", "river": "learners.adapters.river_model"}


def load_optional(kind: str) -> None:
    """Import the module of an adapter that needs torch or river."""
    if kind in _OPTIONAL:
        importlib.import_module(_OPTIONAL[kind])


__all__ = [
    "ADAPTERS",
    "EnsembleAdapter",
    "InvalidModel",
    "LinearAdapter",
    "ModelAdapter",
    "ModelDescription",
    "adapter_from_bytes",
    "load_optional",
    "register_adapter",
]
