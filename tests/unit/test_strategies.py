"""Every update strategy on a real (small) model: it makes the candidate it promises."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learners.adapters import EnsembleAdapter, LinearAdapter, adapter_from_bytes
from learners.gate import GateConfig, evaluate
from learners.scoring import score
from learners.strategies.base import (
    STRATEGIES,
    StrategyNotApplicable,
    UpdateData,
    strategy_from_spec,
)
from learners.torch_training import TrainConfig
from tests.unit.learner_fixtures import (
    accuracy,
    classification,
    regression,
    river_model,
    torch_model,
)


@pytest.fixture(scope="module")
def champion():
    """A torch classifier trained on concept "a"; the drifted data follows concept "b"."""
    model = torch_model("binary", hidden=(32, 16))
    model.train_config = TrainConfig(epochs=40, bf16="off")
    model.fit(classification(1500, seed=1, concept="a"))
    return model


@pytest.fixture(scope="module")
def drifted():
    return classification(1200, seed=2, concept="b")


def test_every_registered_strategy_is_importable():
    for name in STRATEGIES:
        assert strategy_from_spec(name).name == name


def test_unknown_strategy_and_bad_parameters_are_clear_errors():
    with pytest.raises(ValueError, match="unknown strategy 'warp'"):
        strategy_from_spec("warp")
    with pytest.raises(ValueError, match="fine_tune"):
        strategy_from_spec({"name": "fine_tune", "nonsense": 1})


def test_fine_tune_freezes_what_it_is_told_and_recovers(champion, drifted):
    train, holdout = drifted.split(0.3)
    spec = {"name": "fine_tune", "freeze": ["body.0.*"], "epochs": 30}
    candidate = strategy_from_spec(spec).propose(champion, UpdateData(train))
    before = dict(champion.module.named_parameters())
    after = dict(candidate.model.module.named_parameters())
    assert torch.equal(before["body.0.weight"], after["body.0.weight"])  # frozen
    assert not torch.equal(before["head.weight"], after["head.weight"])  # trained
    assert candidate.report["frozen"] == ["body.0.weight", "body.0.bias"]
    assert accuracy(candidate.model, holdout) > accuracy(champion, holdout) + 0.2
    assert all(p.requires_grad for p in candidate.model.module.parameters())  # unfrozen again


def test_fine_tune_all_but_head_trains_only_the_head(champion, drifted):
    candidate = strategy_from_spec({"name": "fine_tune", "epochs": 5}).propose(
        champion, UpdateData(drifted)
    )
    changed = [
        name
        for (name, a), (_, b) in zip(
            champion.module.named_parameters(),
            candidate.model.module.named_parameters(),
            strict=True,
        )
        if not torch.equal(a, b)
    ]
    assert changed == ["head.weight", "head.bias"]


def test_fine_tune_early_stopping_reports_its_epochs(champion, drifted):
    candidate = strategy_from_spec(
        {"name": "fine_tune", "freeze": None, "epochs": 200, "patience": 2, "schedule": "cyclic"}
    ).propose(champion, UpdateData(drifted))
    assert candidate.report["epochs_run"] < 200


def test_online_update_with_replay_remembers_the_old_regime(champion, drifted):
    old = classification(1000, seed=3, concept="a")
    replayed = strategy_from_spec({"name": "online", "replay_fraction": 0.5, "epochs": 5}).propose(
        champion, UpdateData(drifted, reference=old)
    )
    forgetful = strategy_from_spec({"name": "online", "replay_fraction": 0.0, "epochs": 5}).propose(
        champion, UpdateData(drifted)
    )
    assert replayed.report["rows"] > len(drifted)
    assert accuracy(replayed.model, old) > accuracy(forgetful.model, old)


def test_online_update_of_a_river_pipeline_learns_incrementally():
    model = river_model("binary")
    model.fit(classification(500, seed=1, concept="a"))
    drifted = classification(1500, seed=2, concept="b")
    candidate = strategy_from_spec("online").propose(model, UpdateData(drifted))
    assert accuracy(candidate.model, drifted) > accuracy(model, drifted) + 0.2


def test_retrain_builds_a_fresh_regressor():
    champion = torch_model("regression")
    champion.fit(regression(200, seed=1))
    data = regression(1500, seed=2)
    candidate = strategy_from_spec({"name": "retrain", "epochs": 60}).propose(
        champion, UpdateData(data)
    )
    assert score(candidate.model, regression(300, seed=3)) > score(
        champion, regression(300, seed=3)
    )


def test_distillation_gives_a_smaller_student_close_to_its_teacher(champion):
    data = classification(1500, seed=4, concept="a")
    candidate = strategy_from_spec({"name": "distill", "shrink": 4}).propose(
        champion, UpdateData(data)
    )
    assert candidate.model.n_parameters() < champion.n_parameters() / 2
    assert candidate.report["teacher_parameters"] == champion.n_parameters()
    assert accuracy(candidate.model, data) > accuracy(champion, data) - 0.05


@pytest.mark.parametrize("mode", ["average", "stacking", "dynamic"])
def test_ensembles_combine_the_champion_with_a_newcomer(champion, drifted, mode):
    candidate = strategy_from_spec({"name": "ensemble", "mode": mode}).propose(
        champion, UpdateData(drifted)
    )
    assert isinstance(candidate.model, EnsembleAdapter)
    assert len(candidate.model.members) == 2
    holdout = classification(400, seed=7, concept="b")
    assert accuracy(candidate.model, holdout) > accuracy(champion, holdout) + 0.2


@pytest.mark.parametrize("name", ["quantize", "prune", "low_rank"])
def test_compression_reports_size_latency_and_accuracy(champion, name):
    data = classification(800, seed=5, concept="a")
    candidate = strategy_from_spec(name).propose(champion, UpdateData(data))
    report = candidate.report
    for key in ("size_bytes", "latency_ms_per_1k", "validation_score"):
        assert {"before", "after"} <= set(report[key]), key
        assert report[key]["before"] > 0 and report[key]["after"] > 0
    assert abs(report["validation_score"]["change"]) < 0.1
    # and it goes through the gate like any candidate: allowed to be no better, not much worse
    verdict = evaluate(champion, candidate, data, config=GateConfig(require_gain=False))
    assert verdict.promote, verdict.reason
    copy = adapter_from_bytes("torch", candidate.model.to_bytes())  # the blob carries it all
    assert copy.digest() == candidate.model.digest()
    assert list(copy.predict(data.X[:50])) == list(candidate.model.predict(data.X[:50]))
    if name == "quantize":
        assert report["size_bytes"]["after"] < report["size_bytes"]["before"]
        assert verdict.checks["robustness"]["attack"] == "transfer from the champion"
    if name == "prune":
        assert report["sparsity"] == pytest.approx(0.5, abs=0.05)


def test_torch_only_strategies_refuse_other_models():
    with pytest.raises(StrategyNotApplicable, match="needs a torch model"):
        strategy_from_spec("fine_tune").propose(
            LinearAdapter(["a"], [1.0]), UpdateData(classification(50))
        )


def test_strategies_never_change_the_champion(champion, drifted):
    digest = champion.digest()
    for spec in ("online", "fine_tune", "prune"):
        strategy_from_spec(spec).propose(champion, UpdateData(drifted))
    assert champion.digest() == digest
    assert np.isfinite(champion.predict_proba(drifted.X[:3])).all()
