"""Adversarial-input scores on a real (tiny) torch model; their flag rate raises an alarm."""

from __future__ import annotations

import numpy as np
import torch

from detectors import CUSUM
from detectors.adversarial import instability_scores, squeezing_scores, torch_classifier


def _model_and_data():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal([-2, 0], 1, (1000, 2)), rng.normal([2, 0], 1, (1000, 2))]
    y = np.r_[np.zeros(1000), np.ones(1000)].astype(np.int64)
    model = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)
    for _ in range(200):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
        optimiser.step()
    return model, rng


def _adversarial(model, clean: np.ndarray, step: float = 0.02) -> np.ndarray:
    """Gradient-sign steps (iterated FGSM) until each input's predicted class flips."""
    x = torch.as_tensor(clean, dtype=torch.float32).clone()
    original = model(x).argmax(1)
    for _ in range(500):
        x.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(x), original)
        (grad,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            flipped = model(x).argmax(1) != original
            x = (x + step * grad.sign() * (~flipped)[:, None]).detach()
        if flipped.all():
            break
    return x.numpy().astype(np.float64)


def test_adversarial_inputs_score_high_and_clean_inputs_low():
    model, rng = _model_and_data()
    proba = torch_classifier(model)
    clean = np.r_[rng.normal([-2, 0], 1, (200, 2)), rng.normal([2, 0], 1, (200, 2))]
    crafted = _adversarial(model, clean[:100])
    assert (proba(crafted).argmax(1) != proba(clean[:100]).argmax(1)).all()
    clean_scores = instability_scores(proba, clean, epsilon=0.1, draws=32)
    crafted_scores = instability_scores(proba, crafted, epsilon=0.1, draws=32)
    assert np.mean(clean_scores > 0.2) < 0.05
    assert np.mean(crafted_scores > 0.2) > 0.8
    assert np.median(squeezing_scores(proba, crafted, step=0.5)) > np.median(
        squeezing_scores(proba, clean, step=0.5)
    )


def test_a_rising_share_of_flagged_inputs_raises_an_alarm():
    model, rng = _model_and_data()
    proba = torch_classifier(model)
    clean = np.r_[rng.normal([-2, 0], 1, (2500, 2)), rng.normal([2, 0], 1, (2500, 2))]
    rng.shuffle(clean)
    attack = clean[3000:].copy()
    attack[::5] = _adversarial(model, attack[::5])  # one request in five is crafted
    inputs = np.r_[clean[:3000], attack]
    flags = (instability_scores(proba, inputs, epsilon=0.1, draws=16) > 0.2).astype(float)
    alarms = CUSUM().update_many(flags).tolist()
    assert alarms and 3000 <= alarms[0] < 3300, alarms


def test_outlier_flags_count_once_per_run_and_every_50th_row_of_a_long_run(monkeypatch):
    """Autocorrelated inputs flag rows in clumps: the rate counts a clump's first row (and every
    50th of a long one), the same whether the rows come in one batch or split anywhere.  A
    clump may flicker (flags up to RUN_GAP rows apart); flags further apart count each."""
    from detectors import input_outliers
    from detectors.input_outliers import InputOutlierRate

    RUN_EVERY, RUN_GAP = 50, 5  # round numbers for the positions below (defaults: 10, 3)
    monkeypatch.setattr(input_outliers, "RUN_EVERY", RUN_EVERY)
    monkeypatch.setattr(input_outliers, "RUN_GAP", RUN_GAP)

    flags = np.zeros(400, dtype=bool)
    flags[10] = True  # an isolated outlier (probing): counts
    flags[20:32] = True  # a clump of 12: counts once
    flags[40:70:RUN_GAP] = True  # a flickering clump: counts once
    flags[100:220] = True  # a run of 120: its 1st, 50th and 100th rows
    flags[300 : 400 : RUN_GAP + 2] = True  # probing every 7th row: each counts
    whole = InputOutlierRate()._declump(flags)
    assert np.flatnonzero(whole).tolist() == [
        10,
        20,
        40,
        100,
        100 + RUN_EVERY - 1,
        100 + 2 * RUN_EVERY - 1,
        *range(300, 400, RUN_GAP + 2),
    ]
    one_by_one = InputOutlierRate()
    assert [float(one_by_one._count(bool(f))) for f in flags] == whole.tolist()
    for cut in (0, 25, 45, 150, 305, 399):
        split = InputOutlierRate()
        parts = np.r_[split._declump(flags[:cut]), split._declump(flags[cut:])]
        assert parts.tolist() == whole.tolist()
