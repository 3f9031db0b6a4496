"""A model's checkpoint as the fields of one Redis hash, so a flush writes only what changed.

A checkpoint is nested JSON-ready data (:meth:`streams.monitor.ModelMonitor.checkpoint`).
:func:`split` cuts it into fields down to ``depth`` levels of dicts: a field's name is the JSON
array of its path (any key is safe in it, ``/`` included), its value the JSON text of what sits
there.  Between two flushes of a busy model most feature detectors change, but histogram edges,
calibrated references, reference profiles and idle signals do not: comparing each field's
digest with the one last written (:func:`digests`, :func:`changed`) leaves those out of the
write.
:func:`join` puts the fields back together.

>>> fields = split({"a": 1, "signals": {"x/y": {"n": 2}, "z": {}}}, depth=2)
>>> sorted(fields.items())
[('["a"]', '1'), ('["signals","x/y"]', '{"n":2}'), ('["signals","z"]', '{}')]
>>> join(fields)
{'a': 1, 'signals': {'x/y': {'n': 2}, 'z': {}}}
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any, NamedTuple

#: dict levels a checkpoint is cut into: top-level parts, each signal or window, and the
#: parts of each (a feature's detectors, a window's histogram apart from its edges)
DEPTH = 3


def split(checkpoint: Mapping[str, Any], depth: int = DEPTH) -> dict[str, str]:
    """Hash fields (path as a JSON array -> JSON text) of ``checkpoint``; an empty dict is a
    field of its own, so :func:`join` gives back exactly what went in."""
    fields: dict[str, str] = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, Mapping) and node and len(path) < depth:
            for key, value in node.items():
                walk(value, (*path, str(key)))
        else:
            fields[_field_name(path)] = _dumps(node)

    if not isinstance(checkpoint, Mapping) or not checkpoint:
        raise ValueError("a checkpoint is a non-empty mapping")
    walk(checkpoint, ())
    return fields


def as_text(fields: Mapping[str | bytes, str | bytes]) -> dict[str, str]:
    """Fields as Redis' HGETALL returns them (text or bytes), as text."""
    return {_text(name): _text(text) for name, text in fields.items()}


def join(fields: Mapping[str | bytes, str | bytes]) -> dict[str, Any]:
    """The checkpoint that :func:`split` cut into ``fields`` (as Redis' HGETALL returns them,
    text or bytes).  Raises ValueError on a field that is not the JSON :func:`split` writes."""
    checkpoint: dict[str, Any] = {}
    for name, text in sorted(as_text(fields).items()):
        path = json.loads(name)
        if not isinstance(path, list) or not path or not all(isinstance(p, str) for p in path):
            raise ValueError(f"not a checkpoint field name: {name[:80]!r}")
        node = checkpoint
        for key in path[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ValueError(f"checkpoint fields overlap at {path!r}")
            node = child
        node[path[-1]] = json.loads(text)
    return checkpoint


class Digests(NamedTuple):
    """What a later flush compares with: the field names in order (one tuple shared by every
    checkpoint with the same fields) and a 64-bit digest of each field's text, packed.  About
    1.3 KB for a model with 20 features, instead of 23 KB as a dict of names and digests."""

    names: tuple[str, ...]
    packed: bytes

    def of(self) -> dict[str, bytes]:
        """Field name -> its digest."""
        size = _DIGEST
        return {n: self.packed[i * size : (i + 1) * size] for i, n in enumerate(self.names)}


_DIGEST = 8  # bytes: two different texts of one field share a digest with probability 2**-64
_LAYOUTS: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple per set of field names


def digests(fields: Mapping[str, str]) -> Digests:
    """The digest of each field's text (blake2b, 64 bits).

    >>> old = digests({"a": "1", "b": "2"})
    >>> changed(old, digests({"a": "1", "b": "3", "c": "4"}))
    (['b', 'c'], [])
    >>> changed(old, digests({"b": "2"}))
    ([], ['a'])
    """
    names = tuple(sorted(fields))
    names = _LAYOUTS.setdefault(names, names)
    if len(_LAYOUTS) > 10_000:  # layouts churn (ever-new feature names): stop sharing
        _LAYOUTS.clear()
    packed = b"".join(
        hashlib.blake2b(fields[n].encode(), digest_size=_DIGEST).digest() for n in names
    )
    return Digests(names, packed)


def changed(old: Digests, new: Digests) -> tuple[list[str], list[str]]:
    """(fields whose digest differs or that are new, fields that are gone) from ``old`` to
    ``new``."""
    size = _DIGEST
    if old.names == new.names:  # the usual case: the same fields, compared in place
        differ = [
            name
            for i, name in enumerate(new.names)
            if old.packed[i * size : (i + 1) * size] != new.packed[i * size : (i + 1) * size]
        ]
        return differ, []
    before, after = old.of(), new.of()
    return (
        [name for name, digest in after.items() if before.get(name) != digest],
        [name for name in before if name not in after],
    )


@functools.lru_cache(maxsize=1 << 16)
def _field_name(path: tuple[str, ...]) -> str:
    """A field's name, the JSON array of its path: the same few hundred paths every flush."""
    return _dumps(list(path))


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)


# the standard library, not orjson: detector states hold inf and NaN, which orjson writes as
# null.  One encoder for every field (json.dumps with separators builds a new one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
