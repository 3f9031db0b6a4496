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

from typing import Any

import redis
from redis import asyncio as aioredis

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
    return aioredis.Redis.from_url(url, **options)
