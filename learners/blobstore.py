"""Where model blobs live: a small interface, a local directory (default) and Redis.

A blob is stored under its content digest and addressed by a URI that says which store holds
it (``file:///var/lib/driftline/blobs/sha256/ab12...``, ``redis://driftline:blobs:sha256:ab12...``).
Whoever fetches a blob checks it against the digest it expects (:func:`fetch_verified`), so a
corrupted or swapped blob is refused, never served.

An object store is one more class with ``put``/``get`` and a URI scheme, added to
:data:`BLOB_STORES` (e.g. ``s3`` through fsspec); nothing else changes.

>>> import tempfile
>>> store = LocalBlobStore(tempfile.mkdtemp())
>>> uri = store.put(b"weights")
>>> uri.startswith("file://"), fetch_verified(store, uri, digest_of(b"weights"))
(True, b'weights')
"""

from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from learners.adapters.base import InvalidModel


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class BlobStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent); return its URI."""

    def get(self, uri: str) -> bytes:
        """The bytes at ``uri``; raise ``KeyError`` if there are none."""


class LocalBlobStore:
    """Blobs as files ``<root>/sha256/<hex>``, written atomically (temp file + rename)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    def _path(self, digest: str) -> Path:
        algo, _, hexdigest = digest.partition(":")
        return self.root / algo / hexdigest

    def put(self, data: bytes) -> str:
        path = self._path(digest_of(data))
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        return path.as_uri()

    def get(self, uri: str) -> bytes:
        path = Path(urlparse(uri).path)
        if not path.is_relative_to(self.root):
            raise KeyError(f"{uri} is outside this store ({self.root})")
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise KeyError(uri) from None


class RedisBlobStore:
    """Blobs as Redis strings ``<prefix>:blobs:<digest>``: for small models (Redis holds all
    of it in memory; keep blobs to a few MB)."""

    max_bytes = 16 * 1024 * 1024

    def __init__(self, client, prefix: str = "driftline") -> None:
        self.client, self.prefix = client, prefix

    def put(self, data: bytes) -> str:
        if len(data) > self.max_bytes:
            raise ValueError(
                f"blob of {len(data)} bytes is too large for the Redis blob store "
                f"(limit {self.max_bytes}); use a directory (DRIFTLINE_BLOB_STORE=file:///...)"
            )
        key = f"{self.prefix}:blobs:{digest_of(data)}"
        self.client.set(key, data, nx=True)
        return f"redis://{key}"

    def get(self, uri: str) -> bytes:
        key = uri.removeprefix("redis://")
        if not key.startswith(f"{self.prefix}:blobs:"):
            raise KeyError(f"{uri} is not a blob of this store")
        data = self.client.get(key)
        if data is None:
            raise KeyError(uri)
        return data


BLOB_STORES = {
    "file": "learners.blobstore:LocalBlobStore",
    "redis": "learners.blobstore:RedisBlobStore",
}


def blob_store_from_url(url: str, redis_client=None, key_prefix: str = "driftline") -> BlobStore:
    """``file:///path`` or a bare path -> :class:`LocalBlobStore`; ``redis`` -> Redis."""
    scheme = urlparse(url).scheme or "file"
    if scheme not in BLOB_STORES:
        raise ValueError(f"unknown blob store {url!r}: use one of {sorted(BLOB_STORES)}")
    module, _, name = BLOB_STORES[scheme].partition(":")
    cls = getattr(importlib.import_module(module), name)
    if scheme == "redis":
        if redis_client is None:
            raise ValueError("the Redis blob store needs a Redis client")
        return cls(redis_client, key_prefix)
    return cls(urlparse(url).path if "://" in url else url)


def fetch_verified(store: BlobStore, uri: str, digest: str) -> bytes:
    """The blob at ``uri``, only if its content has ``digest``."""
    try:
        data = store.get(uri)
    except KeyError as exc:
        raise InvalidModel(f"blob not found: {exc}") from None
    actual = digest_of(data)
    if actual != digest:
        raise InvalidModel(f"blob at {uri} has digest {actual}, expected {digest}")
    return data
