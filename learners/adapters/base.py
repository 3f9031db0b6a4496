"""The one contract every served model meets, and the registry of adapters by name.

An adapter wraps a trained model of some library and gives the learners and the serving handle
one shape: ``predict`` / ``predict_proba`` on a float32 matrix whose columns are
``feature_names``, ``fit`` on a :class:`~learners.data.Dataset` (incremental where the library
learns incrementally, otherwise a few passes), ``to_bytes`` / ``from_bytes`` (the registry's blob,
safe to load: no arbitrary pickle) and ``describe``.

Classification adapters predict label strings from ``classes`` (the monitor's normalised form)
and give ``predict_proba`` with one column per class in that order; regression adapters predict
floats and have no ``predict_proba``.

>>> from learners.adapters import LinearAdapter, adapter_from_bytes
>>> model = LinearAdapter.untrained(["x"])
>>> copy = adapter_from_bytes("linear", model.to_bytes())
>>> copy.describe().task, copy.digest() == model.digest()
('binary', True)
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from learners.data import TASKS, Dataset, feature_matrix


class InvalidModel(ValueError):
    """A model blob or model that cannot be loaded or served."""


@dataclass(frozen=True)
class ModelDescription:
    adapter: str
    task: str
    classes: tuple[str, ...]
    feature_names: tuple[str, ...]
    n_parameters: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["classes"], doc["feature_names"] = list(self.classes), list(self.feature_names)
        return doc


class ModelAdapter(ABC):
    """A served model of any library behind one protocol (see the module docstring)."""

    kind: ClassVar[str]  # registry name, recorded in version metadata
    incremental: ClassVar[bool] = False  # has learn_one (online learning where it serves)

    task: str
    classes: tuple[str, ...]
    feature_names: tuple[str, ...]

    # -- what subclasses implement ----------------------------------------------------------
    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Labels (classification, strings from ``classes``) or floats (regression)."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, len(classes)) class probabilities; classification only."""
        raise InvalidModel(f"a {self.task} model has no class probabilities")

    @abstractmethod
    def fit(self, data: Dataset) -> None:
        """Learn from ``data`` in place (incrementally where the model can)."""

    @abstractmethod
    def to_bytes(self) -> bytes:
        """The registry blob: deterministic for equal models, loadable by ``from_bytes``."""

    @classmethod
    @abstractmethod
    def from_bytes(cls, blob: bytes) -> ModelAdapter:
        """Load a blob written by ``to_bytes``; raise :class:`InvalidModel` if it is not one."""

    @abstractmethod
    def n_parameters(self) -> int: ...

    # -- shared behaviour ---------------------------------------------------------------------
    def describe(self) -> ModelDescription:
        return ModelDescription(
            self.kind, self.task, self.classes, self.feature_names, self.n_parameters(), {}
        )

    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.to_bytes()).hexdigest()

    def learn_one(self, features: dict[str, float], label: Any) -> None:
        """Learn from one labelled request in place (online learning where the model serves).

        Only incremental models have it (river); others raise :class:`InvalidModel`."""
        raise InvalidModel(f"a {self.kind} model cannot learn one row at a time")

    def clone(self) -> ModelAdapter:
        """An independent copy (through the blob, so it is exactly what the registry stores)."""
        return type(self).from_bytes(self.to_bytes())

    def rows(self, records: Sequence[dict[str, float]]) -> np.ndarray:
        return feature_matrix(records, self.feature_names)

    def prepare(self, data: Dataset) -> np.ndarray:
        """``data.X`` with this model's column order."""
        if data.feature_names == self.feature_names:
            return data.X
        return data.reorder(self.feature_names).X

    def predict_one(self, features: dict[str, float]) -> tuple[Any, float | None]:
        """(prediction, confidence) for one request, as a model server calls it."""
        X = self.rows([features])
        if self.task == "regression":
            return float(self.predict(X)[0]), None
        proba = self.predict_proba(X)[0]
        best = int(np.argmax(proba))
        return self.classes[best], float(proba[best])

    def class_index(self, y: np.ndarray) -> np.ndarray:
        """Label strings as indices into ``classes`` (-1 for a class this model does not know)."""
        lookup = {c: i for i, c in enumerate(self.classes)}
        return np.array([lookup.get(label, -1) for label in y], dtype=np.int64)

    def check(self) -> None:
        if self.task not in TASKS:
            raise InvalidModel(f"task must be one of {TASKS}, got {self.task!r}")
        if self.task != "regression" and len(self.classes) < 2:
            raise InvalidModel(f"a {self.task} model needs at least two classes")
        if self.task == "binary" and len(self.classes) != 2:
            raise InvalidModel("a binary model has exactly two classes")


ADAPTERS: dict[str, type[ModelAdapter]] = {}


def register_adapter(cls: type[ModelAdapter]) -> type[ModelAdapter]:
    ADAPTERS[cls.kind] = cls
    return cls


def adapter_from_bytes(kind: str, blob: bytes) -> ModelAdapter:
    """Load a registry blob with the adapter named in its metadata."""
    if kind not in ADAPTERS:
        # torch and river are imported only when such a model is loaded
        from learners.adapters import load_optional

        load_optional(kind)
    try:
        cls = ADAPTERS[kind]
    except KeyError:
        raise InvalidModel(f"unknown adapter {kind!r} (known: {sorted(ADAPTERS)})") from None
    return cls.from_bytes(blob)
