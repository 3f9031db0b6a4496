"""Small generated data and small models for the learner tests (trained in a second or two)."""

from __future__ import annotations

import numpy as np

from learners.data import Dataset

FEATURES = ("a", "b", "c")


def classification(n: int, seed: int = 0, classes: int = 2, concept: str = "a") -> Dataset:
    """Labels from a linear score on ``concept`` (a or b); ``classes`` quantile bins."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32) * [1.0, 2.0, 0.5] + [0.0, 5.0, -1.0]
    z = X[:, 0] if concept == "a" else (X[:, 1] - 5.0) / 2.0
    z = z + rng.normal(0, 0.2, size=n)
    edges = np.quantile(z, np.linspace(0, 1, classes + 1)[1:-1])
    y = np.array([str(k) for k in np.searchsorted(edges, z)], dtype=object)
    return Dataset(X, y, FEATURES, np.arange(float(n)))


def regression(n: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    y = 3.0 * X[:, 0] - 2.0 * X[:, 1] + rng.normal(0, 0.1, size=n)
    return Dataset(X, y.astype(np.float64), FEATURES, np.arange(float(n)))


def torch_model(task: str = "binary", classes: int = 2, hidden=(16,), seed: int = 0):
    from learners.adapters.torch_module import TorchAdapter

    n_out = 1 if task == "regression" else classes
    names = [] if task == "regression" else [str(k) for k in range(classes)]
    return TorchAdapter.build(
        "learners.zoo:mlp",
        {"n_features": 3, "n_outputs": n_out, "hidden": list(hidden), "seed": seed},
        task=task,
        classes=names,
        feature_names=FEATURES,
    )


def river_model(task: str = "binary", classes: int = 2):
    from river import linear_model, multiclass, preprocessing

    from learners.adapters.river_model import RiverAdapter

    if task == "regression":
        est = preprocessing.StandardScaler() | linear_model.LinearRegression()
        return RiverAdapter(est, "regression", (), FEATURES)
    if task == "multiclass":
        est = preprocessing.StandardScaler() | multiclass.OneVsRestClassifier(
            linear_model.LogisticRegression()
        )
        return RiverAdapter(est, "multiclass", [str(k) for k in range(classes)], FEATURES)
    est = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    return RiverAdapter(est, "binary", ["0", "1"], FEATURES)


def accuracy(model, data: Dataset) -> float:
    return float(np.mean(model.predict(model.prepare(data)) == data.y))
