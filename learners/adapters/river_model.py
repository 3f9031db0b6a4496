"""river models and pipelines: incremental ``learn_one`` / ``learn_many``, loaded safely.

Why this serialisation: river has no format of its own besides pickle, and its models are
object graphs (pipelines, optimisers, running statistics) that a JSON schema per estimator could
never keep up with.  So the blob is a pickle, but it is loaded by a *restricted* unpickler:

- a global may be a class defined in a ``river`` module (river's estimators, statistics and
  its Rust-backed ``VectorDict``), or one of a short fixed list of builtins and standard-library
  containers river's models are made of (``collections.defaultdict``, ``functools.partial``,
  ``copy.deepcopy``, ``random.Random``, numpy's array reconstructors, ...);
- nothing else resolves: no functions outside that list, no dotted names, no ``os``, ``subprocess``,
  ``builtins.eval`` or ``getattr``.  Anything else raises :class:`InvalidModel` before it runs.

The blob also names the river version that wrote it; a model from another river version is
refused with a clear error (pickled river internals are not stable across versions).

>>> import numpy as np
>>> from river import linear_model, preprocessing
>>> from learners.data import Dataset
>>> model = RiverAdapter(preprocessing.StandardScaler() | linear_model.LogisticRegression(),
...                      task="binary", classes=["0", "1"], feature_names=["x"])
>>> X = np.linspace(-3, 3, 200, dtype="float32").reshape(-1, 1)
>>> model.fit(Dataset(X, np.where(X[:, 0] > 0, "1", "0").astype(object), ("x",), np.arange(200.0)))
>>> list(model.predict(np.array([[-2.0], [2.0]], dtype="float32")))
['0', '1']
>>> RiverAdapter.from_bytes(model.to_bytes()).describe().task
'binary'
"""

from __future__ import annotations

import copy
import io
import json
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
import river

from contracts.events import normalise_label
from learners.adapters.base import InvalidModel, ModelAdapter, register_adapter
from learners.data import Dataset

FORMAT = b"driftline.river.v1\n"

_ALLOWED_GLOBALS = {
    ("builtins", name)
    for name in (
        "float", "int", "complex", "bool", "str", "bytes", "bytearray",
        "list", "dict", "set", "frozenset", "tuple", "slice", "range", "object",
    )
} | {
    ("collections", "OrderedDict"),
    ("collections", "Counter"),
    ("collections", "defaultdict"),
    ("collections", "deque"),
    ("copyreg", "_reconstructor"),
    ("functools", "partial"),
    ("copy", "deepcopy"),
    ("random", "Random"),
    ("math", "inf"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}  # fmt: skip


class _RiverUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if (module == "river" or module.startswith("river.")) and "." not in name:
            obj = super().find_class(module, name)
            if isinstance(obj, type) and obj.__module__.startswith("river"):
                return obj
        raise InvalidModel(f"river blob refers to {module}.{name}, which is not allowed")


def safe_loads(data: bytes):
    try:
        return _RiverUnpickler(io.BytesIO(data)).load()
    except InvalidModel:
        raise
    except Exception as exc:  # a truncated or corrupt pickle can raise almost anything
        raise InvalidModel(f"river blob does not load: {exc!r}") from None


def _canonical_pickle(model) -> bytes:
    """Pickle bytes that are the same for equal models: the first pickling of a freshly
    trained river model memoises shared objects differently from a loaded copy, so the blob is
    the pickle of one (restricted) round trip, which is stable from then on."""
    return pickle.dumps(safe_loads(pickle.dumps(model, protocol=5)), protocol=5)


def _count_weights(obj, depth: int) -> int:
    if depth < 0:
        return 0
    weights = getattr(obj, "weights", None)
    if weights is not None and hasattr(weights, "__len__"):
        return len(weights) + 1
    children = []
    for attr in ("steps", "classifiers", "regressors", "models"):
        value = getattr(obj, attr, None)
        if isinstance(value, dict):
            children += list(value.values())
        elif isinstance(value, list | tuple):
            children += list(value)
    for name in ("classifier", "regressor", "model"):
        value = getattr(obj, name, None)
        if value is not None:
            children.append(value)
    return sum(_count_weights(child, depth - 1) for child in children)


@register_adapter
class RiverAdapter(ModelAdapter):
    kind = "river"
    incremental = True

    def __init__(
        self, model, task: str, classes: Sequence[str] = (), feature_names: Sequence[str] = ()
    ) -> None:
        self.model = model
        self.task = task
        self.classes = tuple(classes) if task != "regression" else ()
        self.feature_names = tuple(feature_names)
        self.check()

    def _records(self, X: np.ndarray) -> list[dict[str, float]]:
        names = self.feature_names
        return [
            {n: float(v) for n, v in zip(names, row, strict=True) if v == v}  # nan = missing
            for row in np.asarray(X, dtype=np.float64)
        ]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.task == "regression":
            return super().predict_proba(X)
        # river's binary classifiers learn True/False: True is the second of our classes
        keys = (False, True) if self.task == "binary" else self.classes
        out = np.zeros((len(X), len(self.classes)))
        for i, record in enumerate(self._records(X)):
            proba = self.model.predict_proba_one(record)
            for j, (c, key) in enumerate(zip(self.classes, keys, strict=True)):
                out[i, j] = proba.get(key, proba.get(c, 0.0))
        total = out.sum(axis=1, keepdims=True)
        uniform = np.full_like(out, 1.0 / len(self.classes))
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), uniform)

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.task == "regression":
            return np.array([float(self.model.predict_one(r)) for r in self._records(X)])
        return np.asarray(self.classes, dtype=object)[self.predict_proba(X).argmax(axis=1)]

    def fit(self, data: Dataset) -> None:
        """One incremental pass over ``data`` in time order (``learn_one`` per row)."""
        X = self.prepare(data)
        for record, label in zip(self._records(X), data.y, strict=True):
            self.model.learn_one(record, self._target(label))

    def learn_one(self, features: dict[str, float], label: Any) -> None:
        """``learn_one`` of the wrapped model, with the label as :meth:`fit` gives it."""
        (record,) = self._records(self.rows([features]))
        self.model.learn_one(record, self._target(label))

    def _target(self, label: Any) -> Any:
        if self.task == "regression":
            return float(label)
        label = normalise_label(label)
        return label == self.classes[1] if self.task == "binary" else label

    def clone(self) -> RiverAdapter:
        """An independent copy with the learned state (``copy.deepcopy``: a river estimator's
        state is plain Python objects, and this copy never leaves the process)."""
        return RiverAdapter(copy.deepcopy(self.model), self.task, self.classes, self.feature_names)

    def n_parameters(self) -> int:
        """Learned weights (plus intercepts) found anywhere in the estimator graph."""
        return _count_weights(self.model, depth=4)

    def to_bytes(self) -> bytes:
        header = {
            "task": self.task,
            "classes": list(self.classes),
            "feature_names": list(self.feature_names),
            "river": river.__version__,
        }
        return (
            FORMAT
            + json.dumps(header, sort_keys=True).encode()
            + b"\n"
            + _canonical_pickle(self.model)
        )

    @classmethod
    def from_bytes(cls, blob: bytes) -> RiverAdapter:
        if not blob.startswith(FORMAT):
            raise InvalidModel("not a driftline river blob")
        head, _, payload = blob[len(FORMAT) :].partition(b"\n")
        try:
            header = json.loads(head)
        except ValueError:
            raise InvalidModel("river blob header is not JSON") from None
        if header.get("river") != river.__version__:
            raise InvalidModel(
                f"model was saved by river {header.get('river')}, this process has "
                f"{river.__version__}: retrain or convert it with the matching version"
            )
        return cls(safe_loads(payload), header["task"], header["classes"], header["feature_names"])
