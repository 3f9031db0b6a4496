"""Update strategies: one interface (:class:`UpdateStrategy`), champion + data -> candidate.

| name        | module          | models              | what it does                                    |
|-------------|-----------------|---------------------|-------------------------------------------------|
| ``online``  | ``online``      | all                 | continue the champion on new rows, with replay  |
| ``fine_tune``| ``fine_tune``  | torch               | frozen layers, Adam/SGD, one-cycle/cyclic, early stop |
| ``retrain`` | ``retrain``     | all                 | fresh model on recent data + reference sample   |
| ``distill`` | ``distill``     | torch               | smaller student from a teacher's soft targets   |
| ``ensemble``| ``ensemble``    | all                 | average, stacking or dynamic selection          |
| ``quantize``, ``prune``, ``low_rank`` | ``compression`` | torch | int8, magnitude pruning, SVD factorisation |
"""

from learners.strategies.base import (
    STRATEGIES,
    Candidate,
    StrategyNotApplicable,
    UpdateData,
    UpdateStrategy,
    strategy_from_spec,
)

__all__ = [
    "STRATEGIES",
    "Candidate",
    "StrategyNotApplicable",
    "UpdateData",
    "UpdateStrategy",
    "strategy_from_spec",
]
