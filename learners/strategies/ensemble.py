"""Ensembling: the champion plus a model retrained on the new data, served as one.

``mode`` is ``"average"`` (weights proportional to each member's accuracy on the validation
slice), ``"stacking"`` (a meta-model fitted on the validation slice, which the members did not
train on) or ``"dynamic"`` (serve the member that did best on the most recent validation data;
refitting the ensemble on newer data re-selects).  If the champion is already an ensemble, its
members are reused rather than nested.
"""

from __future__ import annotations

import numpy as np

from learners.adapters.base import ModelAdapter
from learners.adapters.ensemble import EnsembleAdapter
from learners.scoring import score
from learners.strategies.base import Candidate, UpdateData, UpdateStrategy
from learners.strategies.retrain import Retrain


class Ensemble(UpdateStrategy):
    name = "ensemble"

    def __init__(
        self, mode: str = "average", max_members: int = 4, reference_fraction: float = 0.3
    ) -> None:
        self.mode, self.max_members, self.reference_fraction = mode, max_members, reference_fraction

    def _propose(self, champion: ModelAdapter, data: UpdateData) -> Candidate:
        train_part, validation = data.split_validation(0.3)
        base = champion.members if isinstance(champion, EnsembleAdapter) else [champion]
        newcomer = Retrain(self.reference_fraction).propose(
            base[-1], UpdateData(train_part, reference=data.reference, seed=data.seed)
        )
        members = [*base, newcomer.model][-self.max_members :]
        scores = [score(m, validation) for m in members]
        if self.mode == "average":
            shifted = np.asarray(scores) - min(scores) + 1e-3  # regression scores are negative
            ensemble = EnsembleAdapter(members, "average", weights=shifted)
        else:
            ensemble = EnsembleAdapter(members, self.mode)
            ensemble.fit(validation)
        report = {
            "mode": self.mode,
            "members": [m.kind for m in members],
            "member_validation_scores": [round(s, 4) for s in scores],
            "weights": [round(float(w), 4) for w in ensemble.weights],
        }
        return Candidate(ensemble, self.name, report, trained_on=newcomer.trained_on)
