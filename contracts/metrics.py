"""Read a model's rolling metrics from Redis, typed: the Python side of ``driftline metrics``.

The worker writes each window's metrics as a flat Redis hash (``<prefix>:{<model>}:metrics:<w>``,
:mod:`contracts.redis_keys`): numbers as text, an empty string for "nothing to divide", and
nested metrics (per-class scores, the confusion matrix, reliability bins, per-feature stats) as
JSON strings.  :func:`parse_window` turns one such hash back into numbers, ``None`` and dicts;
:func:`read_metrics` reads the windows of one model.

>>> parse_window({b"events": b"42", b"accuracy": b"0.9", b"f1": b"",
...               b"feature_stats": b'{"age": {"n": 3, "mean": 41.5}}'})
{'events': 42, 'accuracy': 0.9, 'f1': None, 'feature_stats': {'age': {'n': 3, 'mean': 41.5}}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from contracts.redis_client import connect
from contracts.redis_keys import RedisKeys
from contracts.settings import Settings

WINDOWS = ("1m", "1h", "1d")
#: metrics the worker stores as JSON text
JSON_METRICS = frozenset({"per_class", "confusion", "reliability", "feature_stats"})


def json_metric(value: Any) -> str:
    """A nested metric as the JSON text the worker stores (keys sorted; orjson: the flush
    writes these for every changed model, and the standard library took several times as
    long).  A non-finite number, which no metric should hold, is written as null.

    >>> json_metric({"b": [1, 0.5], "a": None})
    '{"a":null,"b":[1,0.5]}'
    """
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def parse_window(raw: Mapping[bytes | str, bytes | str]) -> dict[str, Any]:
    """One window's hash as typed values (unknown fields are kept, parsed as numbers if they
    are numbers)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.decode() if isinstance(key, bytes) else key
        text = value.decode() if isinstance(value, bytes) else value
        out[name] = _value(name, text)
    return out


def _value(name: str, text: str) -> Any:
    if text == "":
        return None
    if name in JSON_METRICS:
        return json.loads(text)
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def read_metrics(
    settings: Settings, model_id: str, windows: Sequence[str] = WINDOWS, client: Any = None
) -> dict[str, dict[str, Any]]:
    """The model's metrics per window, typed; a window with nothing in Redis (no traffic within
    twice its length, or an unknown model) is left out.

    Raises ``ValueError`` for a window other than 1m, 1h or 1d."""
    unknown = sorted(set(windows) - set(WINDOWS))
    if unknown:
        raise ValueError(f"unknown window {', '.join(unknown)}: choose 1m, 1h or 1d")
    client = client if client is not None else connect(settings)
    keys = RedisKeys(settings.key_prefix)
    found = {w: client.hgetall(keys.metrics(model_id, w)) for w in windows}
    return {w: parse_window(row) for w, row in found.items() if row}
