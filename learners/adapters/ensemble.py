"""Several models served as one: weighted average, stacking, or dynamic selection.

- ``average``: class probabilities (or regression outputs) averaged with fixed ``weights``;
- ``stacking``: a small meta-model on the members' outputs (multinomial logistic regression on
  log-probabilities for classifiers, least squares for regressors), fitted by ``fit`` on data
  the members did not train on;
- ``dynamic``: ``fit`` scores every member on the data it is given (the most recent labelled
  window) and serves the one that did best.

Members are any adapters; the blob is a JSON document that embeds each member's own blob
(base64), so it loads with the same safe loaders as the members would.

>>> import numpy as np
>>> from learners.adapters.linear import LinearAdapter
>>> a = LinearAdapter(["x"], [2.0]); b = LinearAdapter(["x"], [-2.0])
>>> ens = EnsembleAdapter([a, b], mode="average", weights=[0.75, 0.25])
>>> round(float(ens.predict_proba(np.array([[1.0]], dtype="float32"))[0, 1]), 3)
0.69
>>> EnsembleAdapter.from_bytes(ens.to_bytes()).digest() == ens.digest()
True
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

import numpy as np

from learners.adapters.base import (
    InvalidModel,
    ModelAdapter,
    ModelDescription,
    adapter_from_bytes,
    register_adapter,
)
from learners.data import Dataset

FORMAT = "driftline.ensemble.v1"
MODES = ("average", "stacking", "dynamic")


@register_adapter
class EnsembleAdapter(ModelAdapter):
    kind = "ensemble"

    def __init__(
        self,
        members: Sequence[ModelAdapter],
        mode: str = "average",
        weights: Sequence[float] | None = None,
        meta: np.ndarray | None = None,
    ) -> None:
        if mode not in MODES:
            raise InvalidModel(f"ensemble mode must be one of {MODES}, got {mode!r}")
        if not members:
            raise InvalidModel("an ensemble needs at least one member")
        first = members[0]
        for m in members[1:]:
            if m.task != first.task or m.classes != first.classes:
                raise InvalidModel("ensemble members must share task and classes")
        self.members = list(members)
        self.mode = mode
        self.task, self.classes = first.task, first.classes
        self.feature_names = tuple(dict.fromkeys(n for m in members for n in m.feature_names))
        w = np.ones(len(members)) if weights is None else np.asarray(weights, dtype=np.float64)
        if len(w) != len(members) or (w < 0).any() or w.sum() <= 0:
            raise InvalidModel("weights: one non-negative weight per member, not all zero")
        self.weights = w / w.sum()
        self.meta = meta  # stacking: (n_members * k + 1, k) or (n_members + 1,) for regression

    def _member_outputs(self, X: np.ndarray) -> list[np.ndarray]:
        data = Dataset(
            np.asarray(X, dtype=np.float32), np.zeros(len(X)), self.feature_names, np.zeros(len(X))
        )
        outs = []
        for m in self.members:
            Xm = m.prepare(data)
            outs.append(
                m.predict(Xm).astype(np.float64)
                if self.task == "regression"
                else m.predict_proba(Xm)
            )
        return outs

    def _stack_features(self, outs: list[np.ndarray]) -> np.ndarray:
        cols = [o.reshape(len(o), -1) for o in outs]
        if self.task != "regression":
            cols = [np.log(np.clip(c, 1e-6, 1.0)) for c in cols]
        return np.column_stack([*cols, np.ones(len(cols[0]))])

    def _combine(self, X: np.ndarray) -> np.ndarray:
        outs = self._member_outputs(X)
        if self.mode == "stacking" and self.meta is not None:
            z = self._stack_features(outs) @ self.meta
            if self.task == "regression":
                return z
            z = np.exp(z - z.max(axis=1, keepdims=True))
            return z / z.sum(axis=1, keepdims=True)
        return sum(w * o for w, o in zip(self.weights, outs, strict=True))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.task == "regression":
            return super().predict_proba(X)
        return self._combine(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = self._combine(X)
        if self.task == "regression":
            return out
        return np.asarray(self.classes, dtype=object)[out.argmax(axis=1)]

    def fit(self, data: Dataset) -> None:
        """Dynamic: select the best member on ``data``.  Stacking: fit the meta-model on
        ``data``.  Average: nothing to learn (members are trained by the strategies)."""
        if self.mode == "dynamic":
            from learners.scoring import score

            scores = [score(m, data) for m in self.members]
            self.weights = np.eye(len(self.members))[int(np.argmax(scores))]
        elif self.mode == "stacking":
            F = self._stack_features(self._member_outputs(data.reorder(self.feature_names).X))
            if self.task == "regression":
                self.meta, *_ = np.linalg.lstsq(F, data.y.astype(np.float64), rcond=None)
            else:
                self.meta = _softmax_regression(F, self.class_index(data.y), len(self.classes))

    def n_parameters(self) -> int:
        extra = 0 if self.meta is None else int(np.size(self.meta))
        return sum(m.n_parameters() for m in self.members) + extra

    def describe(self) -> ModelDescription:
        base = super().describe()
        extra = {"mode": self.mode, "members": [m.kind for m in self.members],
                 "weights": [round(float(w), 4) for w in self.weights]}  # fmt: skip
        return ModelDescription(**{**base.__dict__, "extra": extra})

    def to_bytes(self) -> bytes:
        doc = {
            "format": FORMAT,
            "mode": self.mode,
            "weights": self.weights.tolist(),
            "meta": None if self.meta is None else np.asarray(self.meta).tolist(),
            "members": [
                {"adapter": m.kind, "blob": base64.b64encode(m.to_bytes()).decode()}
                for m in self.members
            ],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, blob: bytes) -> EnsembleAdapter:
        try:
            doc = json.loads(blob)
            if doc.get("format") != FORMAT:
                raise InvalidModel(f"expected a {FORMAT} document")
            members = [
                adapter_from_bytes(m["adapter"], base64.b64decode(m["blob"], validate=True))
                for m in doc["members"]
            ]
            meta = None if doc["meta"] is None else np.asarray(doc["meta"], dtype=np.float64)
            return cls(members, doc["mode"], doc["weights"], meta)
        except InvalidModel:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidModel(f"not an ensemble blob: {exc!r}") from None


def _softmax_regression(F: np.ndarray, y: np.ndarray, k: int, steps: int = 300) -> np.ndarray:
    """Multinomial logistic regression by gradient descent with a little L2 (a few features)."""
    W = np.zeros((F.shape[1], k))
    onehot = np.eye(k)[np.clip(y, 0, k - 1)]
    valid = (y >= 0)[:, None]
    for _ in range(steps):
        z = F @ W
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        grad = F.T @ ((p - onehot) * valid) / max(1, int(valid.sum())) + 1e-3 * W
        W -= 0.5 * grad
    return W
