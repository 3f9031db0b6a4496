"""The tiny built-in model: binary logistic regression with its own standardisation, as JSON.

Needs neither torch nor river to serve.  The feature scaling (training mean and standard
deviation) travels inside the model, so events carry raw features; a missing feature counts as
its training mean.  ``fit`` runs a few passes of SGD from the current weights, refreshing the
scaling from the data first when the model is untrained.

>>> import numpy as np
>>> from learners.data import Dataset
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(50, 10, size=(400, 1)).astype("float32")
>>> data = Dataset(X, np.where(X[:, 0] > 50, "1", "0").astype(object), ("x",), np.arange(400.0))
>>> model = LinearAdapter.untrained(["x"])
>>> model.fit(data)
>>> float((model.predict(X) == data.y).mean()) > 0.9
True
>>> LinearAdapter.from_bytes(model.to_bytes()).digest() == model.digest()
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from learners.adapters.base import InvalidModel, ModelAdapter, register_adapter
from learners.data import Dataset

FORMAT = "driftline.linear-binary.v2"


@register_adapter
class LinearAdapter(ModelAdapter):
    kind = "linear"
    task = "binary"

    def __init__(
        self,
        feature_names: Sequence[str],
        weights: Sequence[float],
        intercept: float = 0.0,
        center: Sequence[float] | None = None,
        scale: Sequence[float] | None = None,
        classes: Sequence[str] = ("0", "1"),
        epochs: int = 5,
        learning_rate: float = 0.5,
    ) -> None:
        self.feature_names = tuple(feature_names)
        d = len(self.feature_names)
        self.weights = np.asarray(weights, dtype=np.float64).reshape(d)
        self.intercept = float(intercept)
        self.center = np.zeros(d) if center is None else np.asarray(center, dtype=np.float64)
        self.scale = np.ones(d) if scale is None else np.asarray(scale, dtype=np.float64)
        self.classes = tuple(classes)
        self.epochs, self.learning_rate = epochs, learning_rate
        self.check()
        values = [*self.weights, self.intercept, *self.center, *self.scale]
        if not all(math.isfinite(v) for v in values) or not (self.scale > 0).all():
            raise InvalidModel("weights, intercept and scaling must be finite (scale > 0)")

    @classmethod
    def untrained(cls, feature_names: Sequence[str], **kwargs: Any) -> LinearAdapter:
        return cls(feature_names, np.zeros(len(feature_names)), 0.0, **kwargs)

    @property
    def trained(self) -> bool:
        return bool(self.weights.any() or self.intercept)

    def _logit(self, X: np.ndarray) -> np.ndarray:
        Z = (np.asarray(X, dtype=np.float64) - self.center) / self.scale
        return np.nan_to_num(Z, nan=0.0) @ self.weights + self.intercept

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-np.clip(self._logit(X), -500, 500)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: np.ndarray) -> np.ndarray:
        positive = self._logit(X) >= 0
        return np.where(positive, self.classes[1], self.classes[0]).astype(object)

    def fit(self, data: Dataset) -> None:
        X = self.prepare(data).astype(np.float64)
        target = (data.y == self.classes[1]).astype(np.float64)
        if not self.trained:  # first fit: the scaling comes from the training data
            self.center = np.nan_to_num(np.nanmean(X, axis=0), nan=0.0)
            spread = np.nan_to_num(np.nanstd(X, axis=0), nan=1.0)
            self.scale = np.where(spread > 1e-12, spread, 1.0)
        Z = np.nan_to_num((X - self.center) / self.scale, nan=0.0)
        rng = np.random.default_rng(len(data))
        for _ in range(self.epochs):
            order = rng.permutation(len(Z))
            for start in range(0, len(Z), 32):
                idx = order[start : start + 32]
                p = 1.0 / (
                    1.0 + np.exp(-np.clip(Z[idx] @ self.weights + self.intercept, -500, 500))
                )
                grad = p - target[idx]
                self.weights -= self.learning_rate * (Z[idx].T @ grad) / len(idx)
                self.intercept -= self.learning_rate * float(grad.mean())

    def n_parameters(self) -> int:
        return len(self.weights) + 1

    def to_bytes(self) -> bytes:
        doc = {
            "format": FORMAT,
            "feature_names": list(self.feature_names),
            "classes": list(self.classes),
            "weights": self.weights.tolist(),
            "intercept": self.intercept,
            "center": self.center.tolist(),
            "scale": self.scale.tolist(),
            "epochs": self.epochs,
            "learning_rate": self.learning_rate,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()

    @classmethod
    def from_bytes(cls, blob: bytes) -> LinearAdapter:
        try:
            doc = json.loads(blob)
            if doc.get("format") != FORMAT:
                raise InvalidModel(f"expected a {FORMAT} document")
            return cls(
                doc["feature_names"],
                doc["weights"],
                doc["intercept"],
                doc["center"],
                doc["scale"],
                doc["classes"],
                int(doc["epochs"]),
                float(doc["learning_rate"]),
            )
        except InvalidModel:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidModel(f"not a linear model: {exc!r}") from None
