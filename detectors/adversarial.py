"""Security monitor: adversarial-input scores for a model, whose flag rate is a monitored signal.

Adversarial inputs are crafted to sit where a model's decision is fragile.  Two label-free
scores catch that fragility, given the model itself:

- :func:`instability_scores`: the share of small random perturbations of an input that change
  the predicted class (a normal input sits well inside its class);
- :func:`squeezing_scores`: how far the predicted probabilities move when the input is
  "squeezed" (rounded to fewer significant levels), after Xu et al., "Feature Squeezing", NDSS
  2018.

A score above a threshold flags the input; the 0/1 flags are a stream like any error stream, so
a rising share of flagged inputs is detected by :class:`~detectors.CUSUM` (it recognises a 0/1
stream by itself).  :func:`torch_classifier` adapts a torch module to the ``predict_proba``
these functions take.

>>> import numpy as np
>>> weights = np.array([1.0, -1.0])
>>> def proba(x):  # a linear two-class model: class 1 when x0 > x1
...     p = 1 / (1 + np.exp(-8 * (x @ weights)))
...     return np.c_[1 - p, p]
>>> inputs = np.array([[2.0, -2.0], [0.02, 0.0]])  # far from the boundary, right on it
>>> instability_scores(proba, inputs, epsilon=0.1, draws=50).round(1).tolist()
[0.0, 0.4]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

PredictProba = Callable[[np.ndarray], np.ndarray]


def instability_scores(
    predict_proba: PredictProba,
    inputs: np.ndarray,
    epsilon: float = 0.05,
    draws: int = 16,
    scale: np.ndarray | float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Per input, the share of uniform perturbations within ``epsilon * scale`` per feature
    that change the predicted class."""
    x = np.atleast_2d(np.asarray(inputs, dtype=np.float64))
    rng = np.random.default_rng(seed)
    base = np.argmax(predict_proba(x), axis=1)
    noise = rng.uniform(-1, 1, (draws, *x.shape)) * epsilon * np.asarray(scale)
    perturbed = (x[None] + noise).reshape(-1, x.shape[1])
    moved = np.argmax(predict_proba(perturbed), axis=1).reshape(draws, len(x)) != base[None]
    return moved.mean(axis=0)


def squeezing_scores(
    predict_proba: PredictProba, inputs: np.ndarray, step: np.ndarray | float = 0.25
) -> np.ndarray:
    """Per input, the L1 distance between predicted probabilities before and after rounding
    every feature to a multiple of ``step``."""
    x = np.atleast_2d(np.asarray(inputs, dtype=np.float64))
    step = np.asarray(step, dtype=np.float64)
    squeezed = np.round(x / step) * step
    return np.abs(predict_proba(x) - predict_proba(squeezed)).sum(axis=1)


def torch_classifier(module: Any) -> PredictProba:
    """Wrap a torch module returning logits as a numpy ``predict_proba`` (eval mode, no grad)."""
    import torch

    def predict_proba(x: np.ndarray) -> np.ndarray:
        module.eval()
        with torch.no_grad():
            logits = module(torch.as_tensor(x, dtype=torch.float32))
            return torch.softmax(logits, dim=1).double().numpy()

    return predict_proba
