"""Request ids already joined, remembered for a day in about 6 bytes each.

The label join must recognise a late duplicate of a prediction or label that already joined
(a redelivery), or it would wait for, and join with, a redelivered copy of the other side.  A
dict of the ids themselves costs some 180 bytes per id: 2,400 joined predictions made up over
half of a model's memory.  :class:`SeenIds` keeps 48-bit hashes instead, sorted, per time
bucket (plus a small set for the newest additions), and forgets whole buckets as they leave the
time-to-live.  A sorted bucket is two numpy arrays, each hash's top 32 bits and its low 16 (6
bytes; 64-bit hashes in one array took 8, and the joined ids were a busy model's largest part).
A fresh id is taken for one seen if its hash equals one of the n kept: probability n / 2**48
per lookup (3.6e-10 at the default cap of 100,000 ids a model), counted as a duplicate.

>>> seen = SeenIds(ttl_s=3600.0, max_ids=1000)
>>> seen.add("r1", 100.0); seen.add("r2", 5000.0)
>>> "r1" in seen, "r2" in seen, "r3" in seen
(True, True, False)
>>> seen.expire(now=5000.0)                  # r1 is older than an hour: forgotten
>>> "r1" in seen, len(seen)
(False, 1)
"""

from __future__ import annotations

import hashlib

import numpy as np

_BUCKETS = 24  # per time-to-live
_MERGE = 256  # newest additions kept in a set until there are this many
_NONE: frozenset[int] = frozenset()


def _hash(request_id: str) -> int:
    digest = hashlib.blake2b(request_id.encode(), digest_size=6).digest()
    return int.from_bytes(digest, "little")


def _split(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """48-bit hashes (uint64) as their top 32 bits and their low 16."""
    top = (hashes >> np.uint64(16)).astype(np.uint32)
    return top, (hashes & np.uint64(0xFFFF)).astype(np.uint16)


def _in_sorted(kept: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Whether each of ``hashes`` is in the sorted array ``kept``: a binary search each
    (np.isin would sort both again)."""
    if not len(kept):
        return np.zeros(len(hashes), dtype=bool)
    return kept[np.minimum(np.searchsorted(kept, hashes), len(kept) - 1)] == hashes


class _Bucket:
    """One time bucket's hashes: the newest in a set, the rest sorted and split into their
    top 32 bits (``top``, searched) and low 16 (``low``, compared where ``top`` matches)."""

    __slots__ = ("low", "recent", "top")

    def __init__(self) -> None:
        self.top = np.zeros(0, dtype=np.uint32)
        self.low = np.zeros(0, dtype=np.uint16)
        self.recent: set[int] | frozenset[int] = _NONE  # a set once one is added

    def __len__(self) -> int:
        return len(self.top) + len(self.recent)

    @property
    def sorted(self) -> np.ndarray:
        """The sorted hashes, whole (as uint64)."""
        return (self.top.astype(np.uint64) << np.uint64(16)) | self.low

    def find(self, tops: np.ndarray, lows: np.ndarray) -> np.ndarray:
        """Whether each hash (split as :func:`_split` does) is among the sorted ones."""
        n = len(self.top)
        if not n:
            return np.zeros(len(tops), dtype=bool)
        at = np.minimum(np.searchsorted(self.top, tops), n - 1)  # the first with that top
        same_top = self.top[at] == tops
        found = same_top & (self.low[at] == lows)
        # top bits shared by the next hash too (about n**2 / 2**33 pairs): look further
        shared = same_top & ~found & (self.top[np.minimum(at + 1, n - 1)] == tops) & (at + 1 < n)
        for k in np.flatnonzero(shared):
            end = int(np.searchsorted(self.top, tops[k], side="right"))
            found[k] = lows[k] in self.low[at[k] : end]
        return found

    def add(self, h: int) -> None:
        if not self.recent:
            self.recent = set()
        self.recent.add(h)  # type: ignore[union-attr]
        if len(self.recent) >= _MERGE:
            self.compact()

    def compact(self) -> None:
        """The recent hashes into the sorted array: inserted where they belong, one pass over
        it (np.union1d sorted it all again: 15 ms instead of 0.1 at 100,000 hashes)."""
        if self.recent:
            fresh = np.sort(np.fromiter(self.recent, dtype=np.uint64, count=len(self.recent)))
            kept = self.sorted
            fresh = fresh[~_in_sorted(kept, fresh)]  # a hash already kept is not kept twice
            self.top, self.low = _split(np.insert(kept, np.searchsorted(kept, fresh), fresh))
            self.recent = _NONE  # (an empty set is 216 bytes, in each of a day's buckets)

    def __contains__(self, h: int) -> bool:
        if h in self.recent:
            return True
        top, low = h >> 16, h & 0xFFFF
        i = int(np.searchsorted(self.top, np.uint32(top)))
        while i < len(self.top) and int(self.top[i]) == top:
            if int(self.low[i]) == low:
                return True
            i += 1
        return False


class SeenIds:
    def __init__(self, ttl_s: float, max_ids: int) -> None:
        self.ttl_s, self.max_ids = ttl_s, max_ids
        self.bucket_s = ttl_s / _BUCKETS
        self._buckets: dict[int, _Bucket] = {}
        self._count = 0
        self.forgotten = 0  # buckets forgotten so far: a lookup made before may be stale

    def __len__(self) -> int:
        return self._count

    def __contains__(self, request_id: str) -> bool:
        if not self._buckets:  # nothing joined yet (or all expired): no hashing
            return False
        h = _hash(request_id)
        return any(h in bucket for bucket in self._buckets.values())

    def contains_many(self, request_ids: list[str]) -> np.ndarray:
        """``request_id in self`` for each id, as a boolean array (one numpy lookup per
        bucket instead of one per id and bucket).

        >>> seen = SeenIds(ttl_s=3600.0, max_ids=1000)
        >>> seen.add("r1", 100.0)
        >>> seen.contains_many(["r0", "r1"]).tolist()
        [False, True]
        """
        found = np.zeros(len(request_ids), dtype=bool)
        if not self._buckets or not request_ids:
            return found
        hashes = np.fromiter(map(_hash, request_ids), dtype=np.uint64, count=len(request_ids))
        tops, lows = _split(hashes)
        for bucket in self._buckets.values():
            if bucket.recent:
                found |= np.fromiter(map(bucket.recent.__contains__, hashes.tolist()), bool)
            found |= bucket.find(tops, lows)
        return found

    def quiet_before(self) -> float:
        """An event time before which :meth:`expire` changes nothing (a lower bound)."""
        if self._count > self.max_ids:
            return -float("inf")
        if not self._buckets:
            return float("inf")
        # expire(now) is a no-op while int((now - ttl) // bucket_s) <= the oldest bucket's
        # number; one bucket earlier keeps clear of rounding at the boundary
        return (min(self._buckets) - 1) * self.bucket_s + self.ttl_s

    def add(self, request_id: str, event_time: float) -> None:
        number = int(event_time // self.bucket_s)
        bucket = self._buckets.get(number)
        if bucket is None:
            bucket = self._buckets[number] = _Bucket()
            for older in self._buckets.values():
                if older is not bucket:
                    older.compact()  # only the newest bucket grows a set
        before = len(bucket)
        bucket.add(_hash(request_id))
        self._count += len(bucket) - before

    def expire(self, now: float) -> None:
        """Forget buckets older than the time-to-live, and the oldest beyond ``max_ids``."""
        horizon = int((now - self.ttl_s) // self.bucket_s)
        if self._count <= self.max_ids and (not self._buckets or min(self._buckets) >= horizon):
            return  # the usual case, decided without sorting
        for number in sorted(self._buckets):
            if number >= horizon and self._count <= self.max_ids:
                break
            self._count -= len(self._buckets.pop(number))
            self.forgotten += 1
