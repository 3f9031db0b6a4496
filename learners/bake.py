"""The bake window's judgement: is the new champion worse on live traffic than the one before?

After a promotion the learner collects labelled rows that the *new* champion served, and scores
the previous champion on the very same rows (features and labels are in the labelled sample).
That is a paired comparison on live traffic, so a change in the traffic itself does not count
against the new model: only doing worse than its predecessor would have done does.

For classifiers the measure is the error rate; the new champion fails if its error exceeds the
previous one's by more than ``max_increase``.  For regressors it is the mean absolute error,
and ``max_increase`` is relative.

>>> import numpy as np
>>> from learners.adapters.linear import LinearAdapter
>>> from learners.data import Dataset
>>> X = np.linspace(-1, 1, 200, dtype="float32").reshape(-1, 1)
>>> rows = Dataset(X, np.where(X[:, 0] > 0, "1", "0").astype(object), ("x",), np.arange(200.0))
>>> verdict = bake_verdict(LinearAdapter(["x"], [-3.0]), LinearAdapter(["x"], [3.0]), rows, 0.05)
>>> verdict.rollback, round(verdict.new_error, 2), round(verdict.previous_error, 2)
(True, 1.0, 0.0)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from learners.adapters.base import ModelAdapter
from learners.data import Dataset
from learners.scoring import row_losses


@dataclass(frozen=True)
class BakeVerdict:
    rollback: bool
    new_error: float
    previous_error: float
    rows: int
    max_increase: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bake_verdict(
    new: ModelAdapter, previous: ModelAdapter, rows: Dataset, max_increase: float
) -> BakeVerdict:
    new_error = float(row_losses(new, rows).mean())
    previous_error = float(row_losses(previous, rows).mean())
    if new.task == "regression":
        allowed = previous_error * (1 + max_increase)
        unit = "MAE"
    else:
        allowed = previous_error + max_increase
        unit = "error rate"
    rollback = new_error > allowed
    reason = (
        f"live {unit} {new_error:.3f} vs {previous_error:.3f} for the previous champion on the "
        f"same {len(rows)} rows (allowed up to {allowed:.3f}): "
        + ("roll back" if rollback else "keep")
    )
    return BakeVerdict(rollback, new_error, previous_error, len(rows), max_increase, reason)
