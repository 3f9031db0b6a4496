"""Counts by small integer key (a histogram's bins), kept compact once they stop changing.

A rolling window's buckets each hold histograms: latency bins, probability bins.  As dicts they
cost about 90 bytes per key (the entry and its integer), and a day's buckets of a model with
spread latencies and scores held about 4 MB of them.  A bucket's histograms change while it is
the newest and hardly after, so a :class:`Tally` is a dict while it changes and, once
:meth:`Tally.freeze` is called (the window does it when it checkpoints), one ``bytes``: the
keys and the counts as little-endian integers, each as narrow as the largest needs (keys 1 or 2
bytes, counts 1, 2, 4 or 8), 2 to 10 bytes a key where the dict took 90.  Adding to a frozen
tally unpacks it again.  Either way it reads the same, and its checkpoint text
(:meth:`Tally.to_text`, base64 of the packed bytes) is the same.

>>> t = Tally()
>>> t.add(7)
>>> t.add(3, 2)
>>> t.add(7)
>>> t.freeze()
>>> keys, counts = t.arrays()
>>> keys.tolist(), counts.tolist()
([3, 7], [2, 2])
>>> t.add(3)   # thaws it
>>> t.items()
[(3, 3), (7, 2)]
>>> Tally.from_text(t.to_text()).items()
[(3, 3), (7, 2)]
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

import numpy as np

_KEY = np.dtype("<u2")  # keys below 65,536 (latency bins: 800, probability bins: 100)
_SHORT_KEY = np.dtype("u1")  # ... below 256
_COUNTS = {1: np.dtype("u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<i8")}
_SHORT_KEYS = 16  # added to the header (the count width) when the keys take one byte
_EMPTY = (np.zeros(0, dtype=_KEY), np.zeros(0, dtype=np.int64))


class Tally:
    """Non-negative counts by key in ``[0, 65536)``."""

    __slots__ = ("_open", "_packed")

    def __init__(self) -> None:
        self._open: dict[int, int] | None = {}  # None once frozen
        self._packed = b""

    def add(self, key: int, n: int = 1) -> None:
        counts = self._open if self._open is not None else self._thaw()
        counts[key] = counts.get(key, 0) + n

    def add_many(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Add each ``(key, n)``."""
        counts = self._open if self._open is not None else self._thaw()
        for key, n in pairs:
            counts[key] = counts.get(key, 0) + n

    def _thaw(self) -> dict[int, int]:
        keys, counts = _unpack(self._packed)
        self._open, self._packed = dict(zip(keys.tolist(), counts.tolist(), strict=True)), b""
        return self._open

    def freeze(self) -> None:
        """Pack the counts into bytes until the next add."""
        if self._open is not None:
            self._packed = _pack(self._open)
            self._open = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The keys (ascending) and their counts."""
        if self._open is None:
            return _unpack(self._packed)
        if not self._open:
            return _EMPTY
        keys = np.array(sorted(self._open), dtype=_KEY)
        return keys, np.array([self._open[k] for k in keys.tolist()], dtype=np.int64)

    def items(self) -> list[tuple[int, int]]:
        keys, counts = self.arrays()
        return list(zip(keys.tolist(), counts.tolist(), strict=True))

    def __bool__(self) -> bool:
        return bool(self._open) if self._open is not None else bool(self._packed)

    def to_text(self) -> str:
        """The packed counts as base64 (``""`` when empty): what a checkpoint holds."""
        packed = self._packed if self._open is None else _pack(self._open)
        return base64.b64encode(packed).decode()

    @classmethod
    def from_text(cls, text: str) -> Tally:
        """The tally :meth:`to_text` wrote, frozen.  Raises ValueError on other text."""
        tally = cls()
        packed = base64.b64decode(text, validate=True)
        _unpack(packed)  # checks the layout
        tally._open, tally._packed = None, packed
        return tally

    @classmethod
    def from_pairs(cls, pairs: Iterable[Iterable[int]]) -> Tally:
        """From ``[[key, count], ...]`` (checkpoints written before tallies), frozen."""
        tally = cls()
        tally._open = {int(k): int(n) for k, n in pairs}
        tally.freeze()
        return tally


def added(tallies: Iterable[Tally], size: int) -> np.ndarray:
    """The tallies' counts added up by key, one float per key in ``[0, size)`` (exact below
    2**53): a window's histogram from its buckets'.

    >>> a, b = Tally(), Tally()
    >>> a.add(1, 2); b.add(1); b.add(3)
    >>> added([a, b], 4).tolist()
    [0.0, 3.0, 0.0, 1.0]
    """
    arrays = [t.arrays() for t in tallies]
    if not arrays:
        return np.zeros(size)
    keys = np.concatenate([k for k, _ in arrays])
    counts = np.concatenate([c for _, c in arrays])
    return np.bincount(keys, weights=counts, minlength=size)


def _pack(counts: dict[int, int]) -> bytes:
    """A header byte (the count width, plus :data:`_SHORT_KEYS` for one-byte keys), the keys
    ascending, then their counts.  (Checkpoints written before the narrow widths have header
    4 or 8: two-byte keys.)"""
    if not counts:
        return b""
    keys = sorted(counts)
    values = [counts[k] for k in keys]
    largest = max(values)
    width = next(w for w in (1, 2, 4) if largest < 1 << (8 * w)) if largest <= 0xFFFF_FFFF else 8
    key_type = _SHORT_KEY if keys[-1] <= 0xFF else _KEY
    return (
        bytes([width + (_SHORT_KEYS if key_type is _SHORT_KEY else 0)])
        + np.array(keys, dtype=key_type).tobytes()
        + np.array(values, dtype=_COUNTS[width]).tobytes()
    )


def _unpack(packed: bytes) -> tuple[np.ndarray, np.ndarray]:
    if not packed:
        return _EMPTY
    header = packed[0]
    key_type = _SHORT_KEY if header & _SHORT_KEYS else _KEY
    width = _COUNTS.get(header & ~_SHORT_KEYS)
    n, rest = divmod(len(packed) - 1, key_type.itemsize + (width.itemsize if width else 1))
    if width is None or rest:
        raise ValueError("not a packed tally")
    keys = np.frombuffer(packed, dtype=key_type, count=n, offset=1)
    counts = np.frombuffer(packed, dtype=width, count=n, offset=1 + n * key_type.itemsize)
    return (keys if key_type is _KEY else keys.astype(_KEY)), counts.astype(np.int64)
