"""Content-addressed model registry in Redis, and the labelled samples the monitor keeps there.

| key                                   | type   | content                                   |
|---------------------------------------|--------|-------------------------------------------|
| ``<p>:{<model>}:registry:<digest>``   | string | canonical model JSON (content-addressed)  |
| ``<p>:{<model>}:champion``            | hash   | version, digest, sequence, updated_at     |

Samples are read from ``<p>:{<model>}:labelled`` (written by the stream worker, newest first).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from redis import asyncio as aioredis

from contracts.redis_keys import RedisKeys
from learners.model import LinearModel
from streams.monitor import normalise_label


@dataclass(frozen=True)
class Champion:
    version: str
    digest: str
    sequence: int
    model: LinearModel


class ModelRegistry:
    def __init__(self, client: aioredis.Redis, keys: RedisKeys) -> None:
        self.client = client
        self.keys = keys

    def _blob_key(self, model_id: str, digest: str) -> str:
        return f"{self.keys.prefix}:{{{model_id}}}:registry:{digest}"

    def _champion_key(self, model_id: str) -> str:
        return f"{self.keys.prefix}:{{{model_id}}}:champion"

    async def put(self, model_id: str, model: LinearModel) -> str:
        digest = model.digest()
        await self.client.set(self._blob_key(model_id, digest), model.canonical_json())
        return digest

    async def get(self, model_id: str, digest: str) -> LinearModel | None:
        blob = await self.client.get(self._blob_key(model_id, digest))
        return None if blob is None else LinearModel.from_dict(json.loads(blob))

    async def set_champion(
        self, model_id: str, version: str, model: LinearModel, sequence: int
    ) -> str:
        digest = await self.put(model_id, model)
        await self.client.hset(
            self._champion_key(model_id),
            mapping={
                "version": version,
                "digest": digest,
                "sequence": sequence,
                "updated_at": time.time(),
            },
        )
        return digest

    async def champion(self, model_id: str) -> Champion | None:
        row = await self.client.hgetall(self._champion_key(model_id))
        if not row:
            return None
        row = {k.decode(): v.decode() for k, v in row.items()}
        model = await self.get(model_id, row["digest"])
        if model is None:
            return None
        return Champion(row["version"], row["digest"], int(row["sequence"]), model)


async def recent_samples(
    client: aioredis.Redis,
    keys: RedisKeys,
    model_id: str,
    limit: int,
    since: float = 0.0,
    positive_label: str = "1",
) -> list[tuple[dict[str, float], int]]:
    """Up to ``limit`` newest labelled samples of a model whose prediction came at or after
    ``since`` (event time), oldest first, as (features, 0/1)."""
    rows = await client.lrange(keys.labelled(model_id), 0, limit - 1)
    samples = []
    for raw in reversed(rows):
        doc = json.loads(raw)
        if doc["event_time"] < since:
            continue
        samples.append((doc["features"], int(normalise_label(doc["label"]) == positive_label)))
    return samples
