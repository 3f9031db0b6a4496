"""A model's checkpoint as the fields of one Redis hash, so a flush writes only what changed.

A checkpoint is nested JSON-ready data (:meth:`streams.monitor.ModelMonitor.checkpoint`).
:func:`split` cuts it into fields down to ``depth`` levels of dicts: a field's name is the JSON
array of its path (any key is safe in it, ``/`` included), its value the JSON text of what sits
there.  Between two flushes of a busy model most feature detectors change, but histogram edges,
calibrated references, reference profiles and idle signals do not: comparing each field's
digest with the one last written (:func:`digests`) leaves those out of the write.
:func:`join` puts the fields back together.

>>> fields = split({"a": 1, "signals": {"x/y": {"n": 2}, "z": {}}}, depth=2)
>>> sorted(fields.items())
[('["a"]', '1'), ('["signals","x/y"]', '{"n":2}'), ('["signals","z"]', '{}')]
>>> join(fields)
{'a': 1, 'signals': {'x/y': {'n': 2}, 'z': {}}}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

#: dict levels a checkpoint is cut into: top-level parts, each signal or window, and the
#: parts of each (a feature's detectors, a window's histogram apart from its edges)
DEPTH = 3


def split(checkpoint: Mapping[str, Any], depth: int = DEPTH) -> dict[str, str]:
    """Hash fields (path as a JSON array -> JSON text) of ``checkpoint``; an empty dict is a
    field of its own, so :func:`join` gives back exactly what went in."""
    fields: dict[str, str] = {}

    def walk(node: Any, path: list[str]) -> None:
        if isinstance(node, Mapping) and node and len(path) < depth:
            for key, value in node.items():
                walk(value, [*path, str(key)])
        else:
            fields[_dumps(path)] = _dumps(node)

    if not isinstance(checkpoint, Mapping) or not checkpoint:
        raise ValueError("a checkpoint is a non-empty mapping")
    walk(checkpoint, [])
    return fields


def join(fields: Mapping[str | bytes, str | bytes]) -> dict[str, Any]:
    """The checkpoint that :func:`split` cut into ``fields`` (as Redis' HGETALL returns them,
    text or bytes).  Raises ValueError on a field that is not the JSON :func:`split` writes."""
    checkpoint: dict[str, Any] = {}
    for name, text in sorted(fields.items(), key=lambda item: _text(item[0])):
        path = json.loads(_text(name))
        if not isinstance(path, list) or not path or not all(isinstance(p, str) for p in path):
            raise ValueError(f"not a checkpoint field name: {_text(name)[:80]!r}")
        node = checkpoint
        for key in path[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ValueError(f"checkpoint fields overlap at {path!r}")
            node = child
        node[path[-1]] = json.loads(_text(text))
    return checkpoint


def digests(fields: Mapping[str, str]) -> dict[str, bytes]:
    """A 128-bit digest of each field's text: what a later flush compares with."""
    return {
        name: hashlib.blake2b(text.encode(), digest_size=16).digest()
        for name, text in fields.items()
    }


def _dumps(value: Any) -> str:
    # the standard library, not orjson: detector states hold inf and NaN, which orjson writes
    # as null
    return json.dumps(value, separators=(",", ":"))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
