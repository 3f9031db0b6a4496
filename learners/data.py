"""Labelled data as the learners see it: a feature matrix, targets and their event times.

A :class:`Dataset` is immutable and column-ordered by ``feature_names``.  Classification
targets are normalised label strings (``True``, ``1``, ``1.0`` and ``"1"`` are all ``"1"``,
the monitor's rule), regression targets are floats.  Rows missing a feature get ``nan`` there,
and adapters decide what a missing value means (the built-in networks impute the training
mean).

>>> rows = [{"a": 1.0, "b": 2.0}, {"a": 3.0}]
>>> data = Dataset.from_records(rows, ["1", 0], event_times=[10.0, 11.0])
>>> data.feature_names, data.X.shape, list(data.y)
(('a', 'b'), (2, 2), ['1', '0'])
>>> older, newer = data.split(0.5)
>>> len(older), len(newer)
(1, 1)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from contracts.events import normalise_label

TASKS = ("binary", "multiclass", "regression")


def feature_matrix(rows: Iterable[dict[str, float]], feature_names: Sequence[str]) -> np.ndarray:
    """Rows of ``{name: value}`` as a float32 matrix in ``feature_names`` order (nan if absent)."""
    nan = float("nan")
    return np.array(
        [[row.get(name, nan) for name in feature_names] for row in rows], dtype=np.float32
    ).reshape(-1, len(feature_names))


@dataclass(frozen=True)
class Dataset:
    X: np.ndarray  # (n, d) float32
    y: np.ndarray  # (n,) str labels or float targets
    feature_names: tuple[str, ...]
    event_times: np.ndarray  # (n,) float64, oldest first

    def __post_init__(self) -> None:
        if self.X.dtype != np.float32:
            object.__setattr__(self, "X", np.asarray(self.X, dtype=np.float32))
        if self.X.ndim != 2 or self.X.shape[1] != len(self.feature_names):
            raise ValueError(
                f"X must be (n, {len(self.feature_names)}) for features {self.feature_names}, "
                f"got {self.X.shape}"
            )
        if not (len(self.X) == len(self.y) == len(self.event_times)):
            raise ValueError("X, y and event_times must have the same length")

    @classmethod
    def from_records(
        cls,
        rows: Sequence[dict[str, float]],
        targets: Sequence[object],
        event_times: Sequence[float] | None = None,
        feature_names: Sequence[str] | None = None,
        regression: bool = False,
    ) -> Dataset:
        names = tuple(feature_names or sorted({k for row in rows for k in row}))
        y = (
            np.asarray(targets, dtype=np.float64)
            if regression
            else np.array([normalise_label(t) for t in targets], dtype=object)
        )
        times = np.asarray(
            event_times if event_times is not None else np.arange(len(rows)), dtype=np.float64
        )
        return cls(feature_matrix(rows, names), y, names, times)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def is_regression(self) -> bool:
        return self.y.dtype != object

    def take(self, index: np.ndarray | slice) -> Dataset:
        return Dataset(self.X[index], self.y[index], self.feature_names, self.event_times[index])

    def split(self, fraction: float) -> tuple[Dataset, Dataset]:
        """(older part, newest ``fraction``), by position: the data is oldest first."""
        n_new = round(len(self) * fraction)
        cut = len(self) - n_new
        return self.take(slice(0, cut)), self.take(slice(cut, len(self)))

    def concat(self, other: Dataset) -> Dataset:
        if other.feature_names != self.feature_names:
            other = other.reorder(self.feature_names)
        return Dataset(
            np.concatenate([self.X, other.X]),
            np.concatenate([self.y, other.y]),
            self.feature_names,
            np.concatenate([self.event_times, other.event_times]),
        )

    def reorder(self, feature_names: Sequence[str]) -> Dataset:
        """The same rows with columns in ``feature_names`` order (nan for absent columns)."""
        index = {name: i for i, name in enumerate(self.feature_names)}
        X = np.full((len(self), len(feature_names)), np.nan, dtype=np.float32)
        for j, name in enumerate(feature_names):
            if name in index:
                X[:, j] = self.X[:, index[name]]
        return Dataset(X, self.y, tuple(feature_names), self.event_times)

    def sample(self, n: int, seed: int = 0) -> Dataset:
        """At most ``n`` rows drawn without replacement, kept in time order."""
        if len(self) <= n:
            return self
        rng = np.random.default_rng(seed)
        return self.take(np.sort(rng.choice(len(self), size=n, replace=False)))

    def to_bytes(self) -> bytes:
        """JSON (no pickle): how reference samples are stored in the blob store."""
        doc = {
            "format": "driftline.dataset.v1",
            "feature_names": list(self.feature_names),
            "X": [[None if v != v else float(v) for v in row] for row in self.X.tolist()],
            "y": self.y.tolist(),
            "regression": self.is_regression,
            "event_times": self.event_times.tolist(),
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Dataset:
        try:
            doc = json.loads(blob)
            if doc.get("format") != "driftline.dataset.v1":
                raise ValueError("not a driftline.dataset.v1 document")
            names = tuple(doc["feature_names"])
            X = np.array(
                [[np.nan if v is None else v for v in row] for row in doc["X"]], dtype=np.float32
            ).reshape(-1, len(names))
            y = (
                np.asarray(doc["y"], dtype=np.float64)
                if doc["regression"]
                else np.array([str(v) for v in doc["y"]], dtype=object)
            )
            return cls(X, y, names, np.asarray(doc["event_times"], dtype=np.float64))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a stored dataset: {exc}") from None

    def halves(self) -> tuple[Dataset, Dataset]:
        """(even rows, odd rows): two interleaved samples covering the same time span."""
        return self.take(slice(0, len(self), 2)), self.take(slice(1, len(self), 2))

    def classes(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.y.tolist()))) if not self.is_regression else ()
