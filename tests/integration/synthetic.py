"""Synthetic inference traffic for integration tests: 5 normal features, one of which can be
shifted, sent in batches at about 1,000 events a second."""

from __future__ import annotations

import asyncio

import redis

from contracts.events import InferenceEvent
from contracts.redis_keys import RedisKeys
from streams.producer import EventProducer
from streams.profile import ReferenceProfile

FEATURES = [f"f{i}" for i in range(5)]


def events(model: str, rng, n: int, shift: float, start: float) -> list[InferenceEvent]:
    """``n`` events 1 ms apart in event time from ``start``; feature f0 moved by ``shift``."""
    x = rng.normal(0.0, 1.0, size=(n, len(FEATURES)))
    x[:, 0] += shift
    return [
        InferenceEvent(
            model_id=model,
            model_version="v1",
            request_id=f"r{start + i}",
            event_time=start + i * 0.001,
            features=dict(zip(FEATURES, map(float, row), strict=True)),
            prediction=int(row[1] > 0),
            score=0.9,
            latency_ms=12.0,
        )
        for i, row in enumerate(x)
    ]


async def play(settings, model: str, rng, n: int, shift: float, start: float) -> None:
    async with EventProducer(settings) as producer:
        for i in range(0, n, 200):
            batch = events(model, rng, min(200, n - i), shift, start + i * 0.001)
            await producer.send_inference_batch(batch)
            await producer.flush()
            await asyncio.sleep(0.2)


def set_reference(settings, model: str, rng) -> None:
    """A reference profile, so the detectors need no warm-up on a short stream."""
    profile = ReferenceProfile.from_rows(FEATURES, rng.normal(0, 1, size=(2000, 5)).tolist())
    redis.Redis.from_url(settings.redis_url).set(
        RedisKeys(settings.key_prefix).reference_profile(model), profile.to_json()
    )
