"""Labelled rows from Redis as a :class:`~learners.data.Dataset`, and which of them are "new".

The stream worker keeps each model's newest labelled predictions in a capped Redis list
(:meth:`contracts.redis_keys.RedisKeys.labelled`, newest first, JSON with the prediction's
``event_time`` and the label's ``label_time``).

A row belongs to the regime after an alarm if its prediction *or* its label came at or after the
alarm's event time (:func:`after`).  Comparing prediction times alone misses every row whose label
was slow: an error alarm fires at a label's time, so predictions from just before it, labelled
just after it, are exactly the new regime's first evidence.  Counting is by rows, with a deadline
in *event time* (the stream's clock), so a slow stream (one label a day) still collects its rows.

>>> rows = [{"event_time": 5.0, "label_time": 9.0, "features": {"x": 1.0}, "label": 1},
...         {"event_time": 1.0, "label_time": 2.0, "features": {"x": 0.0}, "label": 0}]
>>> labelled = rows_to_labelled(rows, ("x",))
>>> len(labelled.data), len(after(labelled, since=8.0).data), labelled.newest_time
(2, 1, 9.0)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from contracts.redis_keys import RedisKeys
from learners.data import Dataset


@dataclass(frozen=True)
class Labelled:
    data: Dataset  # oldest first, event_times = prediction times
    label_times: np.ndarray
    unusable: int = 0  # rows whose label does not fit the task (e.g. text for a regressor)
    versions: np.ndarray | None = None  # the model version that made each prediction

    def take(self, index: np.ndarray) -> Labelled:
        versions = None if self.versions is None else self.versions[index]
        return Labelled(self.data.take(index), self.label_times[index], self.unusable, versions)

    def served_by(self, version: str) -> Labelled:
        """Rows whose prediction came from model version ``version``."""
        if self.versions is None:
            return self
        return self.take(np.nonzero(self.versions == version)[0])

    @property
    def newest_time(self) -> float:
        """The stream's event-time clock as the labelled rows see it."""
        if not len(self.data):
            return float("-inf")
        return float(max(self.data.event_times.max(), self.label_times.max()))


def rows_to_labelled(
    rows: Iterable[dict[str, Any]], feature_names: Sequence[str], regression: bool = False
) -> Labelled:
    """Decoded labelled-sample dicts (any order) -> :class:`Labelled`, oldest prediction first."""
    kept, unusable = [], 0
    for row in rows:
        if regression:
            try:
                target = float(row["label"])
            except (TypeError, ValueError):
                unusable += 1
                continue
            if not np.isfinite(target):
                unusable += 1
                continue
            row = {**row, "label": target}
        kept.append(row)
    kept.sort(key=lambda r: float(r["event_time"]))
    data = Dataset.from_records(
        [r["features"] for r in kept],
        [r["label"] for r in kept],
        event_times=[float(r["event_time"]) for r in kept],
        feature_names=feature_names,
        regression=regression,
    )
    label_times = np.array(
        [float(r.get("label_time") or r["event_time"]) for r in kept], dtype=np.float64
    )
    versions = np.array([str(r.get("model_version", "")) for r in kept], dtype=object)
    return Labelled(data, label_times, unusable, versions)


def after(labelled: Labelled, since: float) -> Labelled:
    """Rows whose prediction or label came at or after ``since`` (event time)."""
    newest = np.maximum(labelled.data.event_times, labelled.label_times)
    index = np.nonzero(newest >= since)[0]
    return labelled.take(index)


def before_trigger(labelled: Labelled, since: float) -> Dataset:
    """Rows whose prediction and label both came before ``since``, oldest first."""
    newest = np.maximum(labelled.data.event_times, labelled.label_times)
    return labelled.data.take(np.nonzero(newest < since)[0])


def read_labelled(
    client,
    keys: RedisKeys,
    model_id: str,
    feature_names: Sequence[str],
    regression: bool = False,
    limit: int = 5000,
) -> Labelled:
    """The newest ``limit`` labelled rows of ``model_id`` (synchronous redis-py client)."""
    return rows_to_labelled(read_rows(client, keys, model_id, limit), feature_names, regression)


def read_rows(client, keys: RedisKeys, model_id: str, limit: int = 5000) -> list[dict[str, Any]]:
    """The newest ``limit`` labelled rows of ``model_id`` as the worker wrote them (dicts)."""
    rows = map(_parsed, client.lrange(keys.labelled(model_id), 0, limit - 1))
    return [row for row in rows if row is not None]


def _parsed(item: bytes) -> dict[str, Any] | None:
    try:
        return json.loads(item)
    except ValueError:
        return None  # the worker writes these; a corrupt one is skipped, not fatal


class NewestRows:
    """Each model's newest ``limit`` labelled rows, read incrementally, each kept as
    ``digest(row)`` (what the reader needs of it; None: nothing).

    The worker pushes rows at the head of the list and trims its tail, so after one full read
    only the rows above the newest one already read are fetched: ``LPOS`` finds that row (Redis
    >= 6.0.6) and one ``LRANGE`` takes it and what is above it; if it no longer ends the range,
    rows came in between and both are asked again.  A row no longer found (trimmed away, the
    list rewritten, Redis restarted) means a full read.  With 5,000 rows of 20 features kept,
    parsing all of them takes ~100 ms a model; a second's new rows, well under one
    (``tests/integration/test_newest_rows.py`` reads a live list both ways).
    """

    def __init__(
        self, client, keys: RedisKeys, limit: int, digest: Callable[[dict], Any] | None = None
    ) -> None:
        self.client, self.keys, self.limit = client, keys, limit
        self.digest = digest or (lambda row: row)
        # model -> (the newest raw row read, a digest per raw row, newest first)
        self._kept: dict[str, tuple[bytes, list[Any]]] = {}
        self.full_reads = 0  # how often every row was read (first reads included)

    def read(self, model_id: str) -> list[Any]:
        """The digests of the model's newest ``limit`` rows, newest first (Nones left out)."""
        key = self.keys.labelled(model_id)
        kept = self._kept.get(model_id)
        fresh = None if kept is None else self._above(key, kept[0])
        if kept is None or fresh is None:  # the first read, or the newest row read is gone
            self.full_reads += 1
            fresh, older = self.client.lrange(key, 0, self.limit - 1), []
        else:
            older = kept[1]
        if fresh:
            digests = [None if row is None else self.digest(row) for row in map(_parsed, fresh)]
            older = (digests + older)[: self.limit]
            self._kept[model_id] = (fresh[0], older)
        elif not older:
            self._kept.pop(model_id, None)  # an empty list: read it whole next time
        return [d for d in older if d is not None]

    def _above(self, key: str, marker: bytes) -> list[bytes] | None:
        """The rows pushed above ``marker``, newest first; None where it is gone."""
        for _ in range(3):  # rows pushed between the two commands shift the index
            index = self.client.lpos(key, marker, maxlen=self.limit)
            if index is None:
                return None
            items = self.client.lrange(key, 0, index)
            if items and items[-1] == marker:
                return items[:-1]
        return None
