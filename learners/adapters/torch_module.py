"""torch ``nn.Module`` models: weights as safetensors, architecture from a named factory.

The blob is a plain safetensors file.  Its header metadata (``driftline`` key, JSON) records the
factory's import path and arguments, the task, classes, feature names and any structural
transforms (compression).  Loading never unpickles anything: it imports the factory, builds the
architecture, re-applies the transforms and loads the tensors (strict: every tensor must fit).

Only factories under allowed module prefixes are imported: ``learners.zoo`` always, plus the
comma-separated prefixes in ``DRIFTLINE_MODEL_FACTORIES`` (for example ``mypkg.models``), so a
registry entry cannot make a server import arbitrary code.

>>> import numpy as np, torch
>>> model = TorchAdapter.build("learners.zoo:mlp", {"n_features": 2, "n_outputs": 2, "hidden": [4]},
...                            task="binary", classes=["0", "1"], feature_names=["a", "b"])
>>> copy = TorchAdapter.from_bytes(model.to_bytes())
>>> X = np.array([[0.5, -1.0]], dtype="float32")
>>> bool(np.allclose(copy.predict_proba(X), model.predict_proba(X)))
True
>>> copy.describe().extra["factory"]
'learners.zoo:mlp'
"""

from __future__ import annotations

import importlib
import json
import os
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import nn

from learners.adapters.base import InvalidModel, ModelAdapter, ModelDescription, register_adapter
from learners.adapters.torch_transforms import apply_transforms, export_state, import_state
from learners.data import Dataset
from learners.torch_training import TrainConfig, train

FORMAT = "driftline.torch.v1"
FACTORY_ALLOWLIST_ENV = "DRIFTLINE_MODEL_FACTORIES"
BUILTIN_FACTORIES = ("learners.zoo",)


def allowed_factory(path: str) -> bool:
    module = path.partition(":")[0]
    extra = [p.strip() for p in os.environ.get(FACTORY_ALLOWLIST_ENV, "").split(",") if p.strip()]
    return any(module == p or module.startswith(p + ".") for p in (*BUILTIN_FACTORIES, *extra))


def import_factory(path: str):
    if ":" not in path:
        raise InvalidModel(f"factory must be 'module:function', got {path!r}")
    if not allowed_factory(path):
        raise InvalidModel(
            f"factory {path!r} is not allowed; add its module prefix to {FACTORY_ALLOWLIST_ENV}"
        )
    module_name, _, attr = path.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidModel(f"cannot import factory {path!r}: {exc}") from None
    if not callable(factory):
        raise InvalidModel(f"factory {path!r} is not callable")
    return factory


def safetensors_metadata(blob: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file (8-byte little-endian header size, JSON)."""
    if len(blob) < 8:
        raise InvalidModel("not a safetensors file: too short")
    (size,) = struct.unpack("<Q", blob[:8])
    if size > len(blob) - 8 or size > 100_000_000:
        raise InvalidModel("not a safetensors file: bad header size")
    try:
        header = json.loads(blob[8 : 8 + size])
    except ValueError:
        raise InvalidModel("not a safetensors file: header is not JSON") from None
    return header.get("__metadata__") or {}


@register_adapter
class TorchAdapter(ModelAdapter):
    kind = "torch"

    def __init__(
        self,
        module: nn.Module,
        factory: str,
        factory_kwargs: dict[str, Any],
        task: str,
        classes: Sequence[str],
        feature_names: Sequence[str],
        transforms: Sequence[dict[str, Any]] = (),
        train_config: TrainConfig | None = None,
    ) -> None:
        self.module = module.eval()
        self.factory, self.factory_kwargs = factory, dict(factory_kwargs)
        self.task = task
        self.classes = tuple(classes) if task != "regression" else ()
        self.feature_names = tuple(feature_names)
        self.transforms = [dict(t) for t in transforms]
        self.train_config = train_config or TrainConfig(epochs=40)
        self.check()

    @classmethod
    def build(
        cls,
        factory: str,
        factory_kwargs: dict[str, Any],
        task: str,
        classes: Sequence[str],
        feature_names: Sequence[str],
    ) -> TorchAdapter:
        """A fresh (untrained) network from an allowed factory."""
        module = import_factory(factory)(**factory_kwargs)
        if not isinstance(module, nn.Module):
            raise InvalidModel(f"factory {factory!r} returned a {type(module).__name__}")
        return cls(module, factory, factory_kwargs, task, classes, feature_names)

    def fresh(self) -> TorchAdapter:
        """The same architecture, untrained (for retraining and distillation students)."""
        return TorchAdapter.build(
            self.factory, self.factory_kwargs, self.task, self.classes, self.feature_names
        )

    # -- prediction ---------------------------------------------------------------------------
    @torch.no_grad()
    def logits(self, X: np.ndarray) -> torch.Tensor:
        return self.module(torch.as_tensor(np.asarray(X, dtype=np.float32))).float()

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.task == "regression":
            return super().predict_proba(X)
        return torch.softmax(self.logits(X), dim=-1).numpy().astype(np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = self.logits(X)
        if self.task == "regression":
            return out.squeeze(-1).numpy().astype(np.float64)
        return np.asarray(self.classes, dtype=object)[out.argmax(dim=-1).numpy()]

    # -- training -----------------------------------------------------------------------------
    def targets(self, data: Dataset) -> torch.Tensor:
        if self.task == "regression":
            return torch.as_tensor(data.y.astype(np.float32))
        index = self.class_index(data.y)
        if (index < 0).any():
            unknown = sorted(set(data.y[index < 0].tolist()))
            raise InvalidModel(f"labels {unknown} are not among the model's classes {self.classes}")
        return torch.as_tensor(index)

    def fit(self, data: Dataset) -> None:
        X = torch.as_tensor(self.prepare(data))
        norm = getattr(self.module, "norm", None)
        if norm is not None and hasattr(norm, "fit") and not self._norm_fitted():
            norm.fit(X)
        task = "regression" if self.task == "regression" else "classification"
        train(self.module, X, self.targets(data), task, self.train_config)

    def _norm_fitted(self) -> bool:
        norm = self.module.norm
        return bool((norm.mean != 0).any() or (norm.std != 1).any())

    # -- blob ---------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "factory": self.factory,
            "factory_kwargs": self.factory_kwargs,
            "task": self.task,
            "classes": list(self.classes),
            "feature_names": list(self.feature_names),
            "transforms": self.transforms,
        }

    def to_bytes(self) -> bytes:
        meta = json.dumps(self.metadata(), sort_keys=True, separators=(",", ":"))
        return save_tensors(export_state(self.module), metadata={"driftline": meta})

    @classmethod
    def from_bytes(cls, blob: bytes) -> TorchAdapter:
        try:
            meta = json.loads(safetensors_metadata(blob).get("driftline", "{}"))
        except ValueError:
            raise InvalidModel("torch blob metadata is not JSON") from None
        if meta.get("format") != FORMAT:
            raise InvalidModel(f"expected a {FORMAT} safetensors file")
        adapter = cls.build(
            meta["factory"],
            meta["factory_kwargs"],
            meta["task"],
            meta["classes"],
            meta["feature_names"],
        )
        try:
            apply_transforms(adapter.module, meta.get("transforms", []))
            import_state(adapter.module, load_tensors(blob))
        except (ValueError, RuntimeError) as exc:
            raise InvalidModel(f"weights do not load: {exc}") from None
        adapter.transforms = list(meta.get("transforms", []))
        adapter.module.eval()
        return adapter

    def n_parameters(self) -> int:
        return sum(t.numel() for t in export_state(self.module).values())

    def describe(self) -> ModelDescription:
        base = super().describe()
        extra = {"factory": self.factory, "transforms": [t["kind"] for t in self.transforms]}
        return ModelDescription(**{**base.__dict__, "extra": extra})
