"""Model-output drift: the distribution of predicted classes, chi-square test and PSI."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from scipy import special  # not scipy.stats: ~70 MB of RSS at import, special ~20

from detectors.stat_tools import log10_pvalue_score, psi
from detectors.windowed import WindowedTest

OTHER = "__other__"


class ClassDistribution(WindowedTest):
    """Predicted-class frequencies of each window against the reference's, in fixed memory.

    Inputs are class labels (any value; compared as strings).  The reference and each window
    keep only counts per class, at most ``max_classes`` of them (further classes share one
    ``__other__`` count).  The test is the chi-square test of homogeneity on the
    2 x classes table (reference counts, window counts), so the reference's own sampling noise
    is accounted for; PSI between the two distributions is kept in ``psi``.  Statistic and
    threshold are ``-log10`` of the p-value and of ``alpha``.

    Parameters:
        reference_size: Predictions in the reference.
        window: Predictions per tested window.
        alpha: False-alarm probability per window.
        max_classes: Distinct classes tracked.

    Examples:
        >>> import random
        >>> from detectors import ClassDistribution
        >>> rng = random.Random(1)
        >>> before = rng.choices(["cat", "dog", "bird"], [0.5, 0.3, 0.2], k=3000)
        >>> after = rng.choices(["cat", "dog", "bird"], [0.35, 0.3, 0.35], k=500)
        >>> detector = ClassDistribution()
        >>> detector.update_many(before + after).tolist(), round(detector.psi, 2)
        ([3499], 0.08)
    """

    name = "class_distribution"
    input_kind = "category"
    _test_fields = ("_ref_counts", "_win_counts", "_psi")

    def __init__(
        self,
        reference_size: int = 1000,
        window: int = 500,
        alpha: float = 1e-3,
        max_classes: int = 50,
    ) -> None:
        if max_classes < 2:
            raise ValueError("max_classes must be >= 2")
        self.reference_size = reference_size
        self.window = window
        self.alpha = alpha
        self.max_classes = max_classes
        super().__init__()

    @property
    def threshold(self) -> float:
        return log10_pvalue_score(self.alpha)

    @property
    def psi(self) -> float:
        """PSI between the reference and the last tested window."""
        return self._psi

    def _accept(self, x: Any) -> str | None:
        if x is None or (isinstance(x, float) and not np.isfinite(x)):
            return None
        return str(x)

    def _batch(self, values: Any) -> Any:
        return list(values)

    def _accept_many(self, block: Any) -> Any:
        if set(map(type, block)) == {str}:  # the stream worker's classes: all accepted as they are
            return list(block)
        return super()._accept_many(block)

    def _key(self, label: str, counts: dict[str, int]) -> str:
        if label in counts or len(counts) < self.max_classes - 1:
            return label
        return OTHER

    def _clear_reference(self) -> None:
        self._ref_counts: dict[str, int] = {}
        self._psi = 0.0

    def _add_reference(self, x: str) -> None:
        key = self._key(x, self._ref_counts)
        self._ref_counts[key] = self._ref_counts.get(key, 0) + 1

    def _add_reference_many(self, accepted: Any) -> None:
        # each class's count at once, classes in order of first sight: a class's key is decided
        # at its first sight, and only first sights add keys, so the counts are those of adding
        # one value at a time
        counts = self._ref_counts
        for label, n in Counter(accepted).items():
            key = self._key(label, counts)
            counts[key] = counts.get(key, 0) + n

    def _fit_reference(self) -> None:
        self._clear_window()

    def _clear_window(self) -> None:
        self._win_counts: dict[str, int] = {}

    def _add_window(self, x: str) -> None:
        key = x if x in self._ref_counts else self._key(x, {**self._ref_counts, **self._win_counts})
        self._win_counts[key] = self._win_counts.get(key, 0) + 1

    def _add_window_many(self, accepted: Any) -> None:
        ref, counts = self._ref_counts, self._win_counts  # as _add_reference_many
        for label, n in Counter(accepted).items():
            key = label if label in ref else self._key(label, {**ref, **counts})
            counts[key] = counts.get(key, 0) + n

    def _test_window(self) -> float:
        labels = sorted(set(self._ref_counts) | set(self._win_counts))
        ref = np.array([self._ref_counts.get(k, 0) for k in labels], dtype=np.float64)
        cur = np.array([self._win_counts.get(k, 0) for k in labels], dtype=np.float64)
        self._psi = psi(ref / ref.sum(), cur / cur.sum())
        if len(labels) < 2:
            return 0.0
        table = np.vstack([ref, cur])
        expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
        chi2 = float(((table - expected) ** 2 / expected).sum())
        return log10_pvalue_score(float(special.chdtrc(len(labels) - 1, chi2)))  # chi2's sf

    @classmethod
    def _unit_test_params(cls) -> dict[str, Any]:
        return {"reference_size": 300, "window": 100, "alpha": 1e-4, "max_classes": 3}
