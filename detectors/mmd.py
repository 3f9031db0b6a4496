"""Kernel two-sample test (maximum mean discrepancy) on a bounded reference sketch."""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors.windowed import VectorInput, WindowedTest


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0.0)


class MMDDrift(VectorInput, WindowedTest):
    """MMD between a kept reference sample and each window, with a permutation-calibrated bar.

    The reference has ``reference_size`` rows.  Features are standardised by the reference;
    the Gaussian kernel's bandwidth is the median distance between reference rows.  The first
    ``window`` reference rows are kept as the sketch each window is compared with; the whole
    reference calibrates the threshold: ``permutations`` random splits of it into two samples of
    ``window`` rows give the distribution of the (unbiased) MMD^2 when nothing changed, and the
    threshold is its ``1 - alpha`` quantile.  MMD sees changes of any kind (location, scale,
    correlation, shape) but costs ``O(window^2)`` per window.

    Parameters:
        reference_size: Rows in the reference (at least ``2 * window``).
        window: Rows per tested window (and rows kept from the reference).
        alpha: False-alarm probability per window.
        permutations: Random splits used to calibrate the threshold.
        seed: Seed of those splits (results are reproducible).

    Examples:
        >>> import numpy as np
        >>> from detectors import MMDDrift
        >>> rng = np.random.default_rng(0)
        >>> before = rng.normal(0, 1, (1000, 3))
        >>> after = rng.normal(0, 1, (400, 3)) * [1.0, 1.0, 2.0]  # one feature's spread doubles
        >>> MMDDrift().update_many(np.vstack([before, after])).tolist()
        [1199]
    """

    name = "mmd"
    _test_fields = (
        "_width",
        "_reference",
        "_center",
        "_scale",
        "_bandwidth",
        "_ref_term",
        "_mmd_threshold",
        "_window_rows",
    )

    def __init__(
        self,
        reference_size: int = 800,
        window: int = 200,
        alpha: float = 1e-3,
        permutations: int = 2000,
        seed: int = 0,
    ) -> None:
        if reference_size < 2 * window:
            raise ValueError("reference_size must be at least 2 * window")
        if permutations * alpha < 1:
            raise ValueError("need permutations >= 1 / alpha")
        self.reference_size = reference_size
        self.window = window
        self.alpha = alpha
        self.permutations = permutations
        self.seed = seed
        super().__init__()

    @property
    def threshold(self) -> float:
        return self._mmd_threshold

    def _clear_reference(self) -> None:
        self._width = None
        self._reference: list[list[float]] = []
        self._center: list[float] = []
        self._scale: list[float] = []
        self._bandwidth = 1.0
        self._ref_term = 0.0
        self._mmd_threshold = float("inf")

    def _add_reference(self, x: np.ndarray) -> None:
        self._reference.append(x.tolist())

    def _kernel(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.exp(-_sq_dists(a, b) / (2 * self._bandwidth**2))

    def _fit_reference(self) -> None:
        raw = np.asarray(self._reference)
        center, scale = raw.mean(0), raw.std(0)
        scale[scale == 0] = 1.0
        ref = (raw - center) / scale
        self._center, self._scale = center.tolist(), scale.tolist()
        median = float(np.median(np.sqrt(_sq_dists(ref[:200], ref[:200]))))
        self._bandwidth = median if median > 0 else 1.0
        kernel = self._kernel(ref, ref)
        rng = np.random.default_rng(self.seed)
        m = self.window
        null = np.empty(self.permutations)
        for i in range(self.permutations):
            idx = rng.permutation(len(ref))[: 2 * m]
            null[i] = _mmd2(kernel, idx[:m], idx[m:])
        self._mmd_threshold = float(np.quantile(null, 1 - self.alpha))
        kept = ref[:m]
        k = self._kernel(kept, kept)
        self._ref_term = float((k.sum() - np.trace(k)) / (m * (m - 1)))
        self._reference = kept.tolist()
        self._clear_window()

    def _clear_window(self) -> None:
        self._window_rows: list[list[float]] = []

    def _add_window(self, x: np.ndarray) -> None:
        self._window_rows.append(x.tolist())

    def _test_window(self) -> float:
        cur = (np.asarray(self._window_rows) - self._center) / self._scale
        ref = np.asarray(self._reference)
        k_cc = self._kernel(cur, cur)
        n = len(cur)
        cur_term = (k_cc.sum() - np.trace(k_cc)) / (n * (n - 1))
        cross = self._kernel(ref, cur).mean()
        return float(self._ref_term + cur_term - 2 * cross)

    @classmethod
    def _unit_test_params(cls) -> dict[str, Any]:
        return {"reference_size": 300, "window": 100, "alpha": 0.01, "permutations": 200}


def _mmd2(kernel: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD^2 between the rows ``a`` and ``b`` of a precomputed kernel matrix."""
    k_aa, k_bb, k_ab = kernel[np.ix_(a, a)], kernel[np.ix_(b, b)], kernel[np.ix_(a, b)]
    m, n = len(a), len(b)
    return float(
        (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
        + (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
        - 2 * k_ab.mean()
    )
