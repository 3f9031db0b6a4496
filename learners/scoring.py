"""How good a model is on labelled data: one number per task, and per-row outcomes for tests.

Classification is scored by accuracy, regression by negative mean absolute error (so higher is
better for both), and ``row_losses`` gives what paired tests compare: 0/1 errors or absolute
errors per row.

>>> import numpy as np
>>> from learners.adapters.linear import LinearAdapter
>>> from learners.data import Dataset
>>> data = Dataset(np.array([[1.0], [-1.0]], dtype="float32"), np.array(["1", "1"], dtype=object),
...                ("x",), np.arange(2.0))
>>> score(LinearAdapter(["x"], [1.0]), data), row_losses(LinearAdapter(["x"], [1.0]), data).tolist()
(0.5, [0.0, 1.0])
"""

from __future__ import annotations

import numpy as np

from learners.adapters.base import ModelAdapter
from learners.data import Dataset


def row_losses(model: ModelAdapter, data: Dataset) -> np.ndarray:
    """0/1 error per row (classification) or absolute error (regression)."""
    prediction = model.predict(model.prepare(data))
    if model.task == "regression":
        return np.abs(prediction - data.y.astype(np.float64))
    return (prediction != data.y).astype(np.float64)


def score(model: ModelAdapter, data: Dataset) -> float:
    """Accuracy, or negative mean absolute error for regression: higher is better."""
    if len(data) == 0:
        return float("nan")
    losses = row_losses(model, data)
    return -float(losses.mean()) if model.task == "regression" else 1.0 - float(losses.mean())


def metric_name(model: ModelAdapter) -> str:
    return "neg_mae" if model.task == "regression" else "accuracy"
