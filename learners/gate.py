"""Champion vs candidate: should the candidate serve?  Pure computation, every check recorded.

The gate scores both models on data neither trained on and runs the probes
(:mod:`learners.probes`).  A candidate is promoted only if every check passes:

1. ``holdout``: at least ``min_holdout`` recent held-out rows.
2. ``recent``: it beats the champion on the recent holdout by at least ``min_gain`` (accuracy
   points; for regression, the relative drop in mean absolute error) *and* the improvement is
   significant in a paired one-sided test at level ``alpha``: exact McNemar (binomial test on the
   rows only one model gets right) for classifiers, Wilcoxon signed-rank on absolute errors for
   regressors.  A small holdout cannot promote on noise.
3. ``reference``: on the fixed reference holdout (data from before the drift) it loses at most
   ``reference_tolerance``: the candidate must not have forgotten what still holds.
4. ``privacy``: membership inference on the rows it trained on against the recent holdout; the
   confidence gap is at most ``privacy_max_gap``.
5. ``robustness`` (torch models): its accuracy on FGSM examples (``robustness_eps`` feature
   standard deviations) falls at most ``robustness_tolerance`` below the champion's.

A compression candidate that need not be better (it is smaller) sets ``require_gain=False``:
then ``recent`` only requires it to lose at most ``reference_tolerance`` there too.

>>> import numpy as np
>>> from learners.adapters.linear import LinearAdapter
>>> from learners.data import Dataset
>>> from learners.strategies.base import Candidate
>>> rng = np.random.default_rng(3)
>>> X = rng.normal(size=(600, 2)).astype("float32")
>>> recent = Dataset(X, np.where(X[:, 1] > 0, "1", "0").astype(object), ("a", "b"), np.arange(600.0))
>>> champion = LinearAdapter(["a", "b"], [3.0, 0.0])    # still follows a; the concept is now b
>>> verdict = evaluate(champion, Candidate(LinearAdapter(["a", "b"], [0.0, 3.0]), "manual"), recent)
>>> verdict.promote, verdict.checks["recent"]["p_value"] < 1e-6
(True, True)
>>> evaluate(champion, Candidate(champion.clone(), "manual"), recent).reason
'recent: gain +0.000 accuracy (needs +0.010), p=1 (needs < 0.05)'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from learners.adapters.base import ModelAdapter
from learners.data import Dataset
from learners.probes import NotDifferentiable, fgsm_score, membership_gap
from learners.scoring import metric_name, row_losses, score
from learners.strategies.base import Candidate


@dataclass(frozen=True)
class GateConfig:
    min_gain: float = 0.01
    alpha: float = 0.05
    min_holdout: int = 50
    reference_tolerance: float = 0.03
    privacy_max_gap: float = 0.15
    robustness_eps: float = 0.1
    robustness_tolerance: float = 0.10
    require_gain: bool = True

    @classmethod
    def disabled(cls) -> GateConfig:
        """Every check passes (the record is still kept): for tests and demos of what the bake
        window catches when a gate lets a bad candidate through.  Not for production."""
        return cls(
            min_gain=-1.0,
            alpha=1.01,
            min_holdout=1,
            reference_tolerance=1.0,
            privacy_max_gap=1.0,
            robustness_tolerance=1.0,
        )

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> GateConfig:
        unknown = set(doc) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown gate settings {sorted(unknown)}")
        return cls(**doc)


@dataclass(frozen=True)
class GateVerdict:
    promote: bool
    reason: str
    metric: str
    champion_score: float
    candidate_score: float
    n_holdout: int
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    candidate_report: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gain(champion_score: float, candidate_score: float, regression: bool) -> float:
    """Accuracy points, or the relative drop in mean absolute error (scores are -MAE)."""
    if not regression:
        return candidate_score - champion_score
    champion_mae = -champion_score
    return (champion_mae - (-candidate_score)) / champion_mae if champion_mae > 0 else 0.0


def paired_p_value(
    champion_losses: np.ndarray, candidate_losses: np.ndarray, regression: bool
) -> float:
    """One-sided p-value for "the candidate's per-row losses are lower"."""
    if not regression:
        fixed = int(((champion_losses > 0) & (candidate_losses == 0)).sum())
        broken = int(((champion_losses == 0) & (candidate_losses > 0)).sum())
        if fixed + broken == 0:
            return 1.0
        return float(stats.binomtest(fixed, fixed + broken, 0.5, alternative="greater").pvalue)
    diff = champion_losses - candidate_losses
    if not np.any(diff != 0):
        return 1.0
    return float(stats.wilcoxon(diff, alternative="greater", zero_method="zsplit").pvalue)


def evaluate(
    champion: ModelAdapter,
    candidate: Candidate,
    recent_holdout: Dataset,
    reference_holdout: Dataset | None = None,
    config: GateConfig | None = None,
) -> GateVerdict:
    """Run every check (all of them, even after one fails, so the record is complete)."""
    config = config or GateConfig()
    model = candidate.model
    regression = model.task == "regression"
    unit = "relative MAE" if regression else "accuracy"
    checks: dict[str, dict[str, Any]] = {}
    failures: list[str] = []

    def record(name: str, passed: bool, summary: str, **values: Any) -> None:
        checks[name] = {"passed": passed, "summary": summary, **values}
        if not passed:
            failures.append(f"{name}: {summary}")

    n = len(recent_holdout)
    record(
        "holdout",
        n >= config.min_holdout,
        f"{n} held-out rows (needs {config.min_holdout})",
        rows=n,
    )

    champion_score = score(champion, recent_holdout) if n else float("nan")
    candidate_score = score(model, recent_holdout) if n else float("nan")
    if n:
        improvement = gain(champion_score, candidate_score, regression)
        p_value = paired_p_value(
            row_losses(champion, recent_holdout), row_losses(model, recent_holdout), regression
        )
        if config.require_gain:
            passed = improvement >= config.min_gain and p_value < config.alpha
            summary = (
                f"gain {improvement:+.3f} {unit} (needs {config.min_gain:+.3f}), "
                f"p={p_value:.3g} (needs < {config.alpha:g})"
            )
        else:
            passed = improvement >= -config.reference_tolerance
            summary = (
                f"change {improvement:+.3f} {unit} (may lose {config.reference_tolerance:.3f})"
            )
        record(
            "recent",
            passed,
            summary,
            champion=champion_score,
            candidate=candidate_score,
            gain=improvement,
            p_value=p_value,
        )

    if reference_holdout is not None and len(reference_holdout):
        before, after = score(champion, reference_holdout), score(model, reference_holdout)
        change = gain(before, after, regression)
        record(
            "reference",
            change >= -config.reference_tolerance,
            f"change {change:+.3f} {unit} on {len(reference_holdout)} reference rows "
            f"(may lose {config.reference_tolerance:.3f})",
            champion=before,
            candidate=after,
            change=change,
        )
    else:
        record("reference", True, "no reference holdout registered for this model", skipped=True)

    if candidate.trained_on is not None and len(candidate.trained_on) and n:
        probe = membership_gap(model, candidate.trained_on, recent_holdout)
        record(
            "privacy",
            probe["gap"] <= config.privacy_max_gap,
            f"membership confidence gap {probe['gap']:.3f} (at most {config.privacy_max_gap:.3f}), "
            f"attack AUC {probe['auc']:.3f}",
            **probe,
        )
    else:
        record("privacy", True, "trained on no new rows", skipped=True)

    if n and (model.kind == "torch" or champion.kind == "torch"):
        try:
            theirs = fgsm_score(champion, recent_holdout, config.robustness_eps)
            ours = fgsm_score(model, recent_holdout, config.robustness_eps, surrogate=champion)
            change = gain(theirs["score"], ours["score"], regression)
            record(
                "robustness",
                change >= -config.robustness_tolerance,
                f"FGSM(eps={config.robustness_eps:g}) {unit} {ours['score']:.3f} vs champion "
                f"{theirs['score']:.3f} (may lose {config.robustness_tolerance:.3f})",
                champion=theirs["score"],
                candidate=ours["score"],
                attack=ours["attack"],
                eps=config.robustness_eps,
            )
        except NotDifferentiable as exc:
            record("robustness", True, f"not applicable: {exc}", skipped=True)
    else:
        record("robustness", True, "not applicable: FGSM needs a torch model", skipped=True)

    promote = not failures
    if promote:
        reason = (
            f"promote: {metric_name(model)} {candidate_score:.3f} vs champion {champion_score:.3f} "
            f"on {n} held-out rows; every check passed"
        )
    else:
        reason = "; ".join(failures)
    return GateVerdict(
        promote,
        reason,
        metric_name(model),
        float(champion_score),
        float(candidate_score),
        n,
        checks,
        dict(candidate.report),
    )
