"""High-dimensional input drift: the reconstruction error of a small autoencoder (torch)."""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from detectors.base import DriftDetector
from detectors.cusum import CUSUM
from detectors.windowed import VectorInput


class AutoencoderDrift(VectorInput, DriftDetector):
    """Trains an autoencoder on the reference rows and watches its reconstruction error.

    When many features move together a little (a new client, a sensor recalibrated), no single
    feature test may notice, but rows stop looking like the ones the autoencoder learnt to
    rebuild.  The first ``reference_size`` rows are standardised; a one-hidden-layer autoencoder
    (``hidden`` tanh units, default half the width) is trained on 75% of them with torch (CPU,
    seeded, full batch), and the log reconstruction error of the held-out 25% calibrates an
    upward :class:`~detectors.CUSUM`.  Afterwards each row's error is computed with the learnt
    weights in numpy (no torch on the hot path) and fed to that CUSUM.  The checkpoint holds
    the weights, so a restored detector needs no retraining.

    Parameters:
        reference_size: Rows to train and calibrate on.
        hidden: Hidden units (0: half the number of features, at least 2).
        epochs: Full-batch Adam steps.
        learning_rate: Adam's learning rate.
        seed: Seed of the initial weights.
        target_arl: Rows between false alarms.
        background: Train on a thread of its own instead of inside the ``update`` that
            completes the reference (the stream worker sets it: 300 epochs take a second or
            more, which would stall every model on the event loop).  Rows that come meanwhile
            wait (up to ``reference_size``) and are scored, in order, once the weights are in.

    Examples:
        >>> import numpy as np
        >>> from detectors import AutoencoderDrift
        >>> rng = np.random.default_rng(0)
        >>> latent = rng.normal(0, 1, (4000, 3))
        >>> mixing = rng.normal(0, 1, (3, 12))
        >>> rows = latent @ mixing + rng.normal(0, 0.1, (4000, 12))
        >>> rows[3000:] += rng.normal(0, 0.4, (1000, 12))  # the structure loosens
        >>> detector = AutoencoderDrift()
        >>> alarms = detector.update_many(rows).tolist()
        >>> 3000 <= alarms[0] < 3100
        True
    """

    name = "autoencoder"
    _state_fields = (
        "_width",
        "_rows",
        "_mean",
        "_std",
        "_w1",
        "_b1",
        "_w2",
        "_b2",
        "_cusum",
        "_waiting",
        "n_unscored",
    )

    def __init__(
        self,
        reference_size: int = 2000,
        hidden: int = 0,
        epochs: int = 300,
        learning_rate: float = 0.01,
        seed: int = 0,
        target_arl: float = 500_000.0,
        background: bool = False,
    ) -> None:
        if reference_size < 256 or hidden < 0 or epochs < 1 or learning_rate <= 0:
            raise ValueError("need reference_size >= 256, hidden >= 0, epochs >= 1, lr > 0")
        self.reference_size = reference_size
        self.hidden = hidden
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.seed = seed
        self.target_arl = target_arl
        self.background = background
        super().__init__()

    @property
    def statistic(self) -> float:
        return self._cusum.statistic

    @property
    def threshold(self) -> float:
        return self._cusum.threshold

    def _reset(self) -> None:
        self._width = None
        self._rows: list[list[float]] = []
        self._mean = np.zeros(0)
        self._std = np.zeros(0)
        self._w1 = np.zeros(0)
        self._b1 = np.zeros(0)
        self._w2 = np.zeros(0)
        self._b2 = np.zeros(0)
        self._waiting: list[list[float]] = []  # rows that came while it trained (background)
        self._training: Future | None = None
        self.n_unscored = 0  # rows dropped from a full waiting list
        held_out = self.reference_size - (3 * self.reference_size) // 4
        self._cusum = CUSUM(
            shifts=(0.5, 1.5),
            target_arl=self.target_arl,
            reference_size=held_out,
            detect_scale=False,
            sides="up",
        )

    def reconstruction_error(self, rows: np.ndarray) -> np.ndarray:
        """Log mean squared reconstruction error of each (raw) row."""
        z = (np.atleast_2d(rows) - self._mean) / self._std
        rebuilt = np.tanh(z @ self._w1 + self._b1) @ self._w2 + self._b2
        return np.log(((rebuilt - z) ** 2).mean(axis=1) + 1e-12)

    @property
    def trained(self) -> bool:
        """True once the autoencoder's weights are in place and rows are being scored."""
        return bool(self._w1.size)

    def _update(self, x: np.ndarray) -> bool:
        if self.trained:
            return self._score(x)
        if len(self._rows) < self.reference_size:
            self._rows.append(x.tolist())
            if len(self._rows) < self.reference_size:
                return False
            if self.background:
                self._training = _trainer().submit(_fit, np.asarray(self._rows), self._fit_params())
            else:
                self._install(_fit(np.asarray(self._rows), self._fit_params()))
            return False  # the row that completed the reference is part of it
        # the reference is complete and the autoencoder trains in the background
        if self._training is None:  # restored from a checkpoint taken while it trained
            self._training = _trainer().submit(_fit, np.asarray(self._rows), self._fit_params())
        if not self._training.done():
            self._waiting.append(x.tolist())
            if len(self._waiting) > self.reference_size:  # bounded: the oldest go unscored
                del self._waiting[0]
                self.n_unscored += 1
            return False
        fitted = self._training.result()
        self._training = None
        self._install(fitted)
        waiting, self._waiting = self._waiting, []
        detected = False
        for row in [*waiting, x.tolist()]:
            detected = self._score(np.asarray(row)) or detected
        return detected

    def _score(self, x: np.ndarray) -> bool:
        self._cusum.update(float(self.reconstruction_error(x)[0]))
        return self._cusum.drift_detected

    def _fit_params(self) -> dict[str, Any]:
        return {
            "hidden": self.hidden,
            "epochs": self.epochs,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
        }

    def _install(self, fitted: tuple[np.ndarray, ...]) -> None:
        """Take the trained weights and calibrate the CUSUM on the held-out rows' errors."""
        rows = np.asarray(self._rows)
        self._rows = []
        self._mean, self._std, self._w1, self._b1, self._w2, self._b2 = fitted
        split = (3 * len(rows)) // 4
        self._cusum.update_many(self.reconstruction_error(rows[split:]))

    @classmethod
    def _unit_test_params(cls) -> dict[str, Any]:
        return {"reference_size": 400, "hidden": 2, "epochs": 50, "target_arl": 50_000.0}


def _fit(rows: np.ndarray, params: dict[str, Any]) -> tuple[np.ndarray, ...]:
    """Standardise ``rows`` and train the autoencoder on their first 75% (a pure function:
    it may run on the trainer thread).  Returns mean, std and the four weight arrays."""
    import torch  # imported here: only this detector needs it, and only once

    mean, std = rows.mean(0), rows.std(0)
    std[std == 0] = 1.0
    z = (rows - mean) / std
    split = (3 * len(z)) // 4
    width = z.shape[1]
    hidden = params["hidden"] or max(2, width // 2)
    generator = torch.Generator().manual_seed(params["seed"])
    bound = 1 / math.sqrt(width)
    w1 = ((torch.rand(width, hidden, generator=generator) * 2 - 1) * bound).requires_grad_()
    b1 = torch.zeros(hidden, requires_grad=True)
    w2 = ((torch.rand(hidden, width, generator=generator) * 2 - 1) * bound).requires_grad_()
    b2 = torch.zeros(width, requires_grad=True)
    train = torch.as_tensor(z[:split], dtype=torch.float32)
    optimiser = torch.optim.Adam([w1, b1, w2, b2], lr=params["learning_rate"])
    for _ in range(params["epochs"]):
        optimiser.zero_grad()
        loss = ((torch.tanh(train @ w1 + b1) @ w2 + b2 - train) ** 2).mean()
        loss.backward()
        optimiser.step()
    weights = (t.detach().numpy().astype(np.float64) for t in (w1, b1, w2, b2))
    return (mean, std, *weights)


_TRAINER: ThreadPoolExecutor | None = None


def _trainer() -> ThreadPoolExecutor:
    """One thread for every background training in the process (they queue)."""
    global _TRAINER
    if _TRAINER is None:
        _TRAINER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftline-autoencoder")
    return _TRAINER
