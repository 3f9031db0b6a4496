"""The one output shape every detector reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class DriftResult:
    """What a detector concluded after its latest update.

    Attributes:
        is_drift: True when the latest update raised an alarm.
        index: Number of finite values the detector had seen when it concluded (1-based).
        statistic: The test statistic after the latest update.
        threshold: The value the statistic is compared against.
        detector: The detector's registry name, e.g. ``"adwin"``.
        params: The detector's hyperparameters, as given to its constructor.

    >>> DriftResult(is_drift=False, index=3, statistic=0.1, threshold=1.0, detector="x").is_drift
    False
    """

    is_drift: bool
    index: int
    statistic: float
    threshold: float
    detector: str
    params: dict[str, Any] = field(default_factory=dict)
