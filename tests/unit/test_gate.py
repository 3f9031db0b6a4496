"""The gate: promotes real improvements, refuses noise, forgetting, leaks and fragility."""

from __future__ import annotations

import numpy as np
import pytest

from learners.adapters import LinearAdapter
from learners.data import Dataset
from learners.gate import GateConfig, evaluate, paired_p_value
from learners.strategies.base import Candidate
from learners.torch_training import TrainConfig
from tests.unit.learner_fixtures import classification, regression, torch_model


def _linear(weights):
    return LinearAdapter(["a", "b", "c"], weights)


def test_a_better_model_is_promoted_with_every_check_recorded():
    recent = classification(600, seed=1, concept="b")
    champion, better = _linear([1.0, 0.0, 0.0]), _linear([0.0, 1.0, 0.0])
    better.center = np.array([0.0, 5.0, -1.0])
    verdict = evaluate(champion, Candidate(better, "manual"), recent)
    assert verdict.promote, verdict.reason
    assert set(verdict.checks) == {"holdout", "recent", "reference", "privacy", "robustness"}
    assert verdict.checks["recent"]["p_value"] < 1e-6


def test_a_small_noisy_gain_is_not_enough():
    """Two equally good models differ on a few rows by chance: McNemar says so."""
    champion_losses = np.zeros(90)
    candidate_losses = np.zeros(90)
    champion_losses[:5] = 1.0  # the champion misses 5 rows the candidate gets right ...
    candidate_losses[5:7] = 1.0  # ... and the candidate misses 2 the champion gets right
    gain = champion_losses.mean() - candidate_losses.mean()
    assert gain > 0.03  # above the old rule's 0.02 margin
    p = paired_p_value(champion_losses, candidate_losses, regression=False)
    assert p == pytest.approx(0.2266, abs=1e-3)  # P(X >= 5 | X ~ Bin(7, 1/2)): not significant
    assert paired_p_value(champion_losses * 0, candidate_losses * 0, regression=False) == 1.0


def test_the_old_gate_rule_would_have_promoted_noise_and_this_one_does_not():
    """Regression test: ~90 held-out rows and a 0.02 accuracy margin promoted on noise."""
    x = np.linspace(1.0, 2.0, 90).astype(np.float32)  # both models agree (and are right) here ...
    x[:7] = -0.05  # ... except on 7 borderline rows, where only their intercepts differ
    y = np.array(["1"] * 90, dtype=object)
    y[5:7] = "0"  # the candidate is right on 5 of them, the champion on 2
    holdout = Dataset(x.reshape(-1, 1), y, ("x",), np.arange(90.0))
    champion = LinearAdapter(["x"], [10.0])
    candidate = LinearAdapter(["x"], [10.0], intercept=1.0)
    verdict = evaluate(champion, Candidate(candidate, "manual"), holdout)
    recent = verdict.checks["recent"]
    assert recent["gain"] == pytest.approx(3 / 90)  # above the old rule's 0.02 margin
    assert recent["p_value"] == pytest.approx(0.2266, abs=1e-3)
    assert not verdict.promote and verdict.reason.startswith("recent:")


def test_forgetting_the_reference_blocks_promotion():
    recent = classification(600, seed=1, concept="b")
    reference = classification(600, seed=2, concept="a")
    champion = _linear([1.0, 0.0, 0.0])
    forgetful = _linear([0.0, 1.0, 0.0])
    forgetful.center = np.array([0.0, 5.0, -1.0])
    verdict = evaluate(champion, Candidate(forgetful, "manual"), recent, reference)
    assert not verdict.promote
    assert not verdict.checks["reference"]["passed"]
    assert verdict.checks["recent"]["passed"]
    assert verdict.reason.startswith("reference:")


def test_too_small_a_holdout_is_refused():
    data = classification(30, seed=1)
    verdict = evaluate(_linear([1.0, 0, 0]), Candidate(_linear([1.0, 0, 0]), "m"), data)
    assert not verdict.promote and "holdout" in verdict.reason


def test_a_memorising_model_fails_the_privacy_probe():
    """A wide network trained long on a few noisy rows memorises them."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(120, 3)).astype(np.float32)
    y = np.where(rng.random(120) < 0.5, "1", "0").astype(object)  # labels are pure noise
    train = Dataset(X, y, ("a", "b", "c"), np.arange(120.0))
    memoriser = torch_model(hidden=(256, 256))
    memoriser.train_config = TrainConfig(epochs=300, lr=1e-2, patience=0, bf16="off")
    memoriser.fit(train)
    held_out = classification(200, seed=6)
    verdict = evaluate(
        memoriser.clone(),
        Candidate(memoriser, "retrain", trained_on=train),
        held_out,
        config=GateConfig(require_gain=False, reference_tolerance=1.0),
    )
    privacy = verdict.checks["privacy"]
    assert not privacy["passed"], privacy
    assert privacy["gap"] > 0.15 and 0.0 <= privacy["auc"] <= 1.0


def test_a_fragile_model_fails_the_robustness_probe():
    data = classification(800, seed=8)
    robust = torch_model(hidden=(16,))
    robust.train_config = TrainConfig(epochs=30, bf16="off")
    robust.fit(data)
    fragile = robust.clone()
    import torch

    with torch.no_grad():  # a scrambled first layer: decisions hinge on tiny input moves
        noise = torch.randn(
            fragile.module.body[0].weight.shape, generator=torch.Generator().manual_seed(0)
        )
        fragile.module.body[0].weight.add_(noise * 3.0)
    verdict = evaluate(
        robust,
        Candidate(fragile, "manual"),
        data,
        config=GateConfig(require_gain=False, reference_tolerance=1.0),
    )
    robustness = verdict.checks["robustness"]
    assert robustness["attack"] == "white-box"
    assert robustness["candidate"] < robustness["champion"] - 0.1
    assert not robustness["passed"] and not verdict.promote


def test_regression_uses_a_paired_wilcoxon_test():
    data = regression(400, seed=1)
    champion = torch_model("regression")
    champion.fit(regression(100, seed=2))
    better = torch_model("regression")
    better.fit(regression(1500, seed=3))
    verdict = evaluate(champion, Candidate(better, "retrain"), data)
    assert verdict.metric == "neg_mae"
    assert verdict.promote, verdict.reason
    assert verdict.checks["recent"]["p_value"] < 0.01
    worse = evaluate(better, Candidate(champion, "retrain"), data)
    assert not worse.promote


def test_gate_settings_are_validated():
    with pytest.raises(ValueError, match="unknown gate settings"):
        GateConfig.from_dict({"min_gainz": 0.1})
