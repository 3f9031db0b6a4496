"""Pre-promotion probes: does the candidate leak its training rows, is it easy to fool?

Both are pure computation on adapters and datasets (no I/O); the gate runs them.

- :func:`membership_gap` is a membership-inference check.  An attacker who sees the model's
  confidence in the true label (classification) or its error (regression) tries to tell rows the
  model trained on from rows it never saw.  The probe reports the *confidence gap* (mean on
  training rows minus mean on held-out rows; for regression, relative to the held-out MAE) and the attack's AUC (0.5: no better than chance).
  A large gap means the model memorised its training rows, which leaks who was in them.
- :func:`fgsm_score` is the score on the holdout after the fast gradient sign method moved each
  row by ``eps`` feature standard deviations in the direction that hurts the model most.  Models
  without input gradients (int8-quantised networks) are attacked with examples crafted on a
  *surrogate* (the champion): a transfer attack.

>>> import numpy as np
>>> from learners.adapters.linear import LinearAdapter
>>> from learners.data import Dataset
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(400, 1)).astype("float32")
>>> data = Dataset(X, np.where(X[:, 0] > 0, "1", "0").astype(object), ("x",), np.arange(400.0))
>>> model = LinearAdapter(["x"], [4.0])
>>> probe = membership_gap(model, data.take(slice(0, 200)), data.take(slice(200, 400)))
>>> abs(probe["gap"]) < 0.05, 0.4 < probe["auc"] < 0.6
(True, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learners.adapters.base import ModelAdapter
from learners.data import Dataset
from learners.scoring import score


def true_label_confidence(model: ModelAdapter, data: Dataset) -> np.ndarray:
    """Per row: probability given to the true class, or minus the absolute error (regression)."""
    X = model.prepare(data)
    if model.task == "regression":
        return -np.abs(model.predict(X) - data.y.astype(np.float64))
    proba = model.predict_proba(X)
    index = model.class_index(data.y)
    known = index >= 0
    out = np.zeros(len(data))
    out[known] = proba[np.nonzero(known)[0], index[known]]
    return out


def auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """P(a random positive scores above a random negative), ties counted half (Mann-Whitney)."""
    if len(positives) == 0 or len(negatives) == 0:
        return float("nan")
    values = np.concatenate([positives, negatives])
    order = values.argsort(kind="mergesort")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    rank_sum = ranks[: len(positives)].sum()
    n_pos, n_neg = len(positives), len(negatives)
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def membership_gap(
    model: ModelAdapter, trained_on: Dataset, held_out: Dataset, max_rows: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Confidence gap and attack AUC between training rows and held-out rows."""
    members = true_label_confidence(model, trained_on.sample(max_rows, seed))
    outsiders = true_label_confidence(model, held_out.sample(max_rows, seed))
    gap = float(members.mean() - outsiders.mean())
    if model.task == "regression":  # errors have units: the gap relative to the held-out MAE
        gap /= max(1e-12, -float(outsiders.mean()))
    return {
        "gap": gap,
        "auc": auc(members, outsiders),
        "n_members": len(members),
        "n_held_out": len(outsiders),
    }


class NotDifferentiable(TypeError):
    """The model gives no gradient with respect to its inputs."""


def fgsm_rows(model: ModelAdapter, data: Dataset, eps: float) -> np.ndarray:
    """``data.X`` moved by ``eps`` standard deviations per feature along the loss gradient's sign."""
    if model.kind != "torch":
        raise NotDifferentiable(f"a {model.kind} model has no input gradients")
    import torch
    import torch.nn.functional as F

    if any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in model.module.modules()):
        raise NotDifferentiable("int8-quantised layers give no input gradients")
    X = model.prepare(data).astype(np.float32)
    X = np.where(np.isnan(X), np.nanmean(X, axis=0), X).astype(np.float32)
    scale = torch.as_tensor(np.nan_to_num(X.std(axis=0), nan=1.0) + 1e-12)
    x = torch.as_tensor(X).clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            out = model.module(x)
            if model.task == "regression":
                loss = F.mse_loss(out.squeeze(-1), model.targets(data))
            else:
                loss = F.cross_entropy(out, model.targets(data))
            (grad,) = torch.autograd.grad(loss, x)
    except (RuntimeError, NotImplementedError) as exc:
        raise NotDifferentiable(str(exc).splitlines()[0]) from None
    return (x + eps * scale * grad.sign()).detach().numpy()


def fgsm_score(
    model: ModelAdapter, data: Dataset, eps: float, surrogate: ModelAdapter | None = None
) -> dict[str, Any]:
    """The model's score on FGSM examples of ``data`` (crafted on itself, else on ``surrogate``)."""
    attack, crafter = "white-box", model
    try:
        rows = fgsm_rows(model, data, eps)
    except NotDifferentiable:
        if surrogate is None:
            raise
        attack, crafter = "transfer from the champion", surrogate
        rows = fgsm_rows(surrogate, data, eps)
    adversarial = Dataset(rows, data.y, crafter.feature_names, data.event_times)
    return {"score": score(model, adversarial), "clean": score(model, data), "attack": attack}
