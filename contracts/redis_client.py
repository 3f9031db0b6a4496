"""One way to connect to Redis, standalone or Cluster, for every process.

>>> from contracts.settings import Settings
>>> type(connect(Settings())).__name__  # connects on its first command
'Redis'

A synchronous Cluster client asks the node for the cluster's layout at once; the asyncio one on
its first command.  On a Cluster, a transaction may only touch
keys of one hash slot: every per-model key carries the model id as its hash tag
(``<prefix>:{<model>}:...``, :mod:`contracts.redis_keys`), so one model's writes can be one
transaction.
"""

from __future__ import annotations

import functools
from typing import Any

import hiredis
import redis
from redis import asyncio as aioredis
from redis.connection import HiredisRespSerializer

from contracts.settings import Settings


def connect(settings: Settings, **options: Any) -> redis.Redis | redis.RedisCluster:
    """A synchronous client for ``settings.redis_url``."""
    if settings.redis_cluster:
        return redis.RedisCluster.from_url(settings.redis_url, **options)
    return redis.Redis.from_url(settings.redis_url, **options)


def connect_async(settings: Settings, **options: Any) -> aioredis.Redis | aioredis.RedisCluster:
    """An asyncio client for ``settings.redis_url`` (create it inside the running loop)."""
    return async_client(settings.redis_url, settings.redis_cluster, **options)


def async_client(
    url: str, cluster: bool = False, **options: Any
) -> aioredis.Redis | aioredis.RedisCluster:
    """:func:`connect_async` from a URL and the Cluster flag (for code handed those alone)."""
    if cluster:
        return aioredis.RedisCluster.from_url(url, **options)
    client = aioredis.Redis.from_url(url, **options)
    pool = client.connection_pool
    pool.connection_class = packed_by_hiredis(pool.connection_class)
    return client


class _HiredisPacking:
    """Commands packed by hiredis' C packer, as redis-py's synchronous client packs them, instead
    of the asyncio client's Python one: the same bytes, about 3x faster per argument, which the
    worker's flush of thousands of hash fields feels.  redis-py's own hiredis serializer copies
    every argument in Python first (for the views hiredis refuses); here only a command that
    holds one goes that way."""

    def pack_command(self, *args: Any) -> list[bytes]:
        name = args[0]
        if isinstance(name, str) or b" " in name:  # "CONFIG GET": the words apart
            words = name.encode().split() if isinstance(name, str) else name.split()
            args = (*words, *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # a memoryview or bytearray, or a type neither packer takes
            return _PACKER.pack(*args)


_PACKER = HiredisRespSerializer()


@functools.cache
def packed_by_hiredis(connection_class: type) -> type:
    """``connection_class`` (plain, TLS or Unix socket, as the URL chose) packing with hiredis.

    >>> from redis.asyncio.connection import Connection
    >>> plain, fast = Connection(), packed_by_hiredis(Connection)()
    >>> command = ("HSET", "k", "f", b"\\x00\\xff", 0.1, 2**70, memoryview(b"v"), "ünï")
    >>> fast.pack_command(*command) == [b"".join(plain.pack_command(*command))]
    True
    >>> fast.pack_command("CONFIG GET", "maxmemory") == plain.pack_command("CONFIG GET", "maxmemory")
    True
    """
    return type(f"Hiredis{connection_class.__name__}", (_HiredisPacking, connection_class), {})
