"""A small portable model: binary logistic regression as plain JSON.

The learner trains challengers with river and exports them here, so that a model update is a
few hundred bytes of JSON, content-addressed by the SHA-256 of its canonical form, and a model
server can load it without river or pickle.

>>> m = LinearModel(weights={"x": 2.0}, intercept=-1.0)
>>> round(m.predict_proba({"x": 1.0}), 3), m.predict({"x": 0.0})
(0.731, 0)
>>> LinearModel.from_dict(m.to_dict()) == m, m.digest()[:7]
(True, 'sha256:')
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

FORMAT = "driftline.linear-binary.v1"


class InvalidModel(ValueError):
    """A model document that cannot be served."""


@dataclass(frozen=True)
class LinearModel:
    weights: dict[str, float] = field(default_factory=dict)
    intercept: float = 0.0

    def predict_proba(self, features: dict[str, float]) -> float:
        z = self.intercept + sum(w * features.get(name, 0.0) for name, w in self.weights.items())
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)

    def predict(self, features: dict[str, float]) -> int:
        return int(self.predict_proba(features) >= 0.5)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "weights": dict(sorted(self.weights.items())),
            "intercept": self.intercept,
        }

    def canonical_json(self) -> bytes:
        return json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False
        ).encode()

    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.canonical_json()).hexdigest()

    @classmethod
    def from_dict(cls, doc: Any) -> LinearModel:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise InvalidModel(f"expected a {FORMAT} document")
        weights, intercept = doc.get("weights"), doc.get("intercept")
        if not isinstance(weights, dict) or not isinstance(intercept, int | float):
            raise InvalidModel("weights must be an object and intercept a number")
        values = [*weights.values(), intercept]
        if not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in values
        ):
            raise InvalidModel("weights and intercept must be finite numbers")
        return cls({str(k): float(v) for k, v in weights.items()}, float(intercept))

    # -- river interop (training side only) ---------------------------------------------------
    def to_river(self, learning_rate: float = 0.05):
        from river import linear_model, optim

        model = linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate))
        model._weights.update(self.weights)
        model.intercept = self.intercept
        return model

    @classmethod
    def from_river(cls, model) -> LinearModel:
        return cls({k: float(v) for k, v in model.weights.items()}, float(model.intercept))
