"""Topic set-up and clean-up against the real broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streams.topics import drop_topics, ensure_topics, topic_names


async def _topics(settings) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_list)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def _wait_for(settings, predicate, timeout: float = 15.0) -> set[str]:
    """Topic metadata reaches the broker's cache a little after a create or delete."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        names = await _topics(settings)
        if predicate(names) or asyncio.get_running_loop().time() > deadline:
            return names
        await asyncio.sleep(0.2)


async def test_ensure_creates_missing_topics_once_and_drop_removes_only_the_prefix(settings):
    mine = settings.isolated(f"{settings.topic_prefix}-t{uuid.uuid4().hex[:4]}")
    created = await ensure_topics(mine)
    assert sorted(created) == sorted(topic_names(mine))
    wanted = set(topic_names(mine))
    assert wanted <= await _wait_for(settings, wanted.issubset)
    assert await ensure_topics(mine) == []  # idempotent
    dropped = await drop_topics(mine, mine.topic_prefix)
    assert sorted(dropped) == sorted(topic_names(mine))
    left = await _wait_for(settings, lambda names: not wanted & names)
    assert not any(name.startswith(mine.topic_prefix) for name in left)
    # the module's own topics (a different, shorter prefix's siblings) are untouched
    assert set(topic_names(settings)) <= left


async def test_drop_refuses_an_empty_prefix(settings):
    with pytest.raises(ValueError, match="non-empty"):
        await drop_topics(settings, "")
