"""What the dashboard shows, read from Redis.

Each monitoring worker appends a point to ``<prefix>:{model}:series`` every
``DRIFTLINE_SERIES_EVERY_S`` (:func:`streams.runtime.series_point`): wall time ``t``, a few
1-minute metrics ``m`` and every detector's ``[statistic, threshold]`` under ``r``.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from contracts.redis_keys import RedisKeys


class DashboardData:
    def __init__(self, client: aioredis.Redis, keys: RedisKeys) -> None:
        self.client, self.keys = client, keys

    async def models(self) -> list[dict[str, Any]]:
        monitored = {m.decode() for m in await self.client.smembers(self.keys.models())}
        registered = {m.decode() for m in await self.client.smembers(self.keys.registered_models())}
        out = []
        for model_id in sorted(monitored | registered):
            open_alarms = await self.client.hlen(self.keys.open_alarms(model_id))
            out.append({"model": model_id, "open_alarms": open_alarms})
        return out

    async def series(self, model_id: str, after: str = "-", count: int = 720) -> list[dict]:
        """Points after stream id ``after`` (exclusive), oldest first, each with its ``id``."""
        start = "-" if after == "-" else f"({after}"
        rows = await self.client.xrange(self.keys.series(model_id), min=start, count=count)
        points = []
        for stream_id, fields in rows:
            point = json.loads(fields[b"p"])
            point["id"] = stream_id.decode()
            points.append(point)
        return points

    async def last_id(self, model_id: str) -> str:
        """The newest point's stream id (``0-0`` when there is none): a live stream starts
        after it."""
        rows = await self.client.xrevrange(self.keys.series(model_id), count=1)
        return rows[0][0].decode() if rows else "0-0"

    async def open_alarms(self, model_id: str) -> list[dict[str, Any]]:
        """Open alarms (streams/lifecycle.py's entries, flattened), oldest first."""
        raw = await self.client.hgetall(self.keys.open_alarms(model_id))
        alarms = []
        for key, value in raw.items():
            entry = json.loads(value)
            alarm = dict(entry.get("alarm", {}))
            alarm.update(
                dedup_key=key.decode(),
                last_raised=entry.get("last_raised"),
                repeats=entry.get("repeats", 0),
            )
            alarms.append(alarm)
        return sorted(alarms, key=lambda a: a.get("event_time", 0))

    async def versions(self, model_id: str) -> list[dict[str, Any]]:
        """Registry events (registered, promoted, rolled back), oldest first."""
        rows = await self.client.lrange(self.keys.registry(model_id, "registry-log"), 0, 199)
        return [json.loads(r) for r in reversed(rows)]

    async def metrics(self, model_id: str, window: str = "1h") -> dict[str, str]:
        raw = await self.client.hgetall(self.keys.metrics(model_id, window))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def model(self, model_id: str) -> dict[str, Any]:
        return {
            "model": model_id,
            "series": await self.series(model_id),
            "open_alarms": await self.open_alarms(model_id),
            "versions": await self.versions(model_id),
            "metrics_1h": await self.metrics(model_id),
        }
