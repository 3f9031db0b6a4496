"""User rules on model outputs (a score within [0, 1], probabilities that sum to 1, ...).

A rule is declared as plain data (so it can live in configuration) and checked against the
fields of one inference event: in the stream worker ``score``, ``probabilities``,
``prediction``, ``latency_ms`` and ``features.<name>``.  Each rule's violations form a 0/1 stream: the stream workers
count them (the violation rate) and watch each with a :class:`~detectors.CUSUM`, so a rule
that starts failing more often raises an alarm.

Kinds:

- ``range``: ``field`` is a number within ``[low, high]`` (either bound may be omitted);
- ``sum_to_one``: ``field`` is a list of numbers (or a mapping of them) summing to 1 within
  ``tolerance``;
- ``present``: ``field`` is given and not null;
- ``one_of``: ``field`` is one of ``values``.

Except for ``present``, a rule about a field the event does not carry is not broken: a model
that sends no ``probabilities`` does not fail ``sum_to_one``.

>>> rules = parse_rules([
...     {"name": "score_is_probability", "kind": "range", "field": "score", "low": 0, "high": 1},
...     {"name": "probabilities_sum_to_one", "kind": "sum_to_one", "field": "probabilities"},
... ])
>>> [rule.violated({"score": 1.2, "probabilities": [0.3, 0.7]}) for rule in rules]
[True, False]
>>> [rule.violated({"score": 0.5}) for rule in rules]  # no probabilities: nothing to check
[False, False]
>>> parse_rules([{"name": "x", "kind": "between", "field": "score"}])
Traceback (most recent call last):
...
ValueError: rule 'x': unknown kind 'between' (known: one_of, present, range, sum_to_one)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

KINDS = ("one_of", "present", "range", "sum_to_one")


@dataclass(frozen=True)
class OutputRule:
    name: str
    kind: str
    field: str
    low: float | None = None
    high: float | None = None
    tolerance: float = 1e-3
    values: tuple[Any, ...] = field(default_factory=tuple)

    def violated(self, fields: Mapping[str, Any]) -> bool:
        """Whether the event's ``fields`` break this rule (a missing field breaks only
        ``present``)."""
        return self.broken(fields.get(self.field))

    def violated_many(self, values: Sequence[Any]) -> np.ndarray:
        """:meth:`broken` on each of many events' values of ``field`` (``None`` where an event
        lacks it), as a 0/1 float array; the common cases without a Python call per value.

        >>> rule = OutputRule("score_is_probability", "range", "score", low=0, high=1)
        >>> rule.violated_many([0.5, 1.2, None, -0.1]).tolist()
        [0.0, 1.0, 0.0, 1.0]
        """
        n = len(values)
        if self.kind != "present" and values.count(None) == n:  # nothing to check
            return np.zeros(n)
        if self.kind == "range" and set(map(type, values)) == {float}:  # finite: the decoder
            column = np.asarray(values, dtype=np.float64)
            broken = ~np.isfinite(column)
            if self.low is not None:
                broken |= column < self.low
            if self.high is not None:
                broken |= column > self.high
            return broken.astype(np.float64)
        return np.fromiter(map(self.broken, values), dtype=np.float64, count=n)

    def broken(self, value: Any) -> bool:
        """Whether an event whose ``field`` has ``value`` (``None``: absent) breaks the rule."""
        if self.kind == "present":
            return value is None
        if value is None:
            return False
        if self.kind == "one_of":
            return value not in self.values
        if self.kind == "range":
            if not _is_number(value):
                return True
            return (self.low is not None and value < self.low) or (
                self.high is not None and value > self.high
            )
        numbers = list(value.values()) if isinstance(value, Mapping) else value
        if not isinstance(numbers, list | tuple) or not all(_is_number(v) for v in numbers):
            return True
        return abs(math.fsum(numbers) - 1.0) > self.tolerance


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_rules(specs: list[Mapping[str, Any]]) -> list[OutputRule]:
    """Rules from plain dicts, with a clear error for a malformed one."""
    rules = []
    for spec in specs:
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"every rule needs a non-empty 'name': {dict(spec)!r}")
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ValueError(f"rule {name!r}: unknown kind {kind!r} (known: {', '.join(KINDS)})")
        if not isinstance(spec.get("field"), str):
            raise ValueError(f"rule {name!r}: 'field' must name an event field")
        unknown = set(spec) - {"name", "kind", "field", "low", "high", "tolerance", "values"}
        if unknown:
            raise ValueError(f"rule {name!r}: unknown keys {sorted(unknown)}")
        rules.append(
            OutputRule(
                name=name,
                kind=kind,
                field=spec["field"],
                low=spec.get("low"),
                high=spec.get("high"),
                tolerance=float(spec.get("tolerance", 1e-3)),
                values=tuple(spec.get("values", ())),
            )
        )
    if len({r.name for r in rules}) != len(rules):
        raise ValueError("rule names must be unique")
    return rules
