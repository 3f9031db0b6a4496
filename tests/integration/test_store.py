"""RedisStore on the real Redis: nothing buffered during a flush is lost."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis

from contracts.redis_keys import RedisKeys
from streams import checkpoint_parts
from streams.store import RedisStore
from tests.integration.lost_answers import lose_answers


def _saved(client: redis.Redis, keys: RedisKeys, model: str) -> dict:
    """The checkpoint as Redis holds it (the fields of one hash)."""
    return checkpoint_parts.join(client.hgetall(keys.checkpoint(model)))


def _checkpoint_store(settings) -> tuple[RedisKeys, redis.Redis, RedisStore]:
    """The module's keys (fresh for each module), a plain client and a store on them."""
    keys = RedisKeys(settings.key_prefix)
    return keys, redis.Redis.from_url(settings.redis_url), RedisStore(settings.redis_url, keys)


class _SlowPipeline:
    """The real pipeline, with its round trip stretched so writes can arrive meanwhile."""

    def __init__(self, pipe, started: asyncio.Event) -> None:
        self._pipe, self._started = pipe, started

    def __getattr__(self, name):
        return getattr(self._pipe, name)

    async def execute(self):
        self._started.set()
        await asyncio.sleep(0.2)
        return await self._pipe.execute()


async def test_samples_buffered_while_a_flush_is_in_flight_are_not_dropped(settings):
    """Regression test: flush cleared its buffers after awaiting Redis, dropping the labelled
    samples (the learner's training data) that arrived during the await."""
    keys = RedisKeys(settings.key_prefix)
    store = RedisStore(settings.redis_url, keys)
    started = asyncio.Event()
    real_pipeline = store.client.pipeline
    store.client.pipeline = lambda **kw: _SlowPipeline(real_pipeline(**kw), started)
    store.add_labelled("store-m", {"n": 0})
    store.add_counts({"inferences.processed": 1})
    flushing = asyncio.create_task(store.flush())
    await started.wait()
    store.add_labelled("store-m", {"n": 1})  # arrives while the first flush awaits Redis
    store.add_counts({"inferences.processed": 1})
    assert await flushing
    assert await store.flush()
    client = redis.Redis.from_url(settings.redis_url)
    rows = [json.loads(r)["n"] for r in client.lrange(keys.labelled("store-m"), 0, -1)]
    assert sorted(rows) == [0, 1]
    assert int(client.hget(keys.counters(), "inferences.processed")) == 2
    await store.close()


async def test_a_failed_flush_keeps_everything_for_the_next_one(settings):
    keys = RedisKeys(settings.key_prefix)
    store = RedisStore("redis://127.0.0.1:1/0", keys)  # nothing listens there
    store.add_labelled("store-f", {"n": 0})
    store.add_counts({"labels.processed": 3})
    store.add_checkpoint("store-f", {"v": 1})
    assert not await store.flush()
    store.add_labelled("store-f", {"n": 1})
    store.add_checkpoint("store-f", {"v": 2})  # newer than the one that failed
    await store.close()
    store.redis_url = settings.redis_url  # Redis is back
    assert await store.flush()
    client = redis.Redis.from_url(settings.redis_url)
    rows = [json.loads(r)["n"] for r in client.lrange(keys.labelled("store-f"), 0, -1)]
    assert rows == [1, 0]  # newest first, both kept
    assert int(client.hget(keys.counters(), "labels.processed")) == 3
    assert _saved(client, keys, "store-f") == {"v": 2}
    await store.close()


async def test_a_flush_writes_only_the_checkpoint_fields_that_changed(settings):
    keys, client, store = _checkpoint_store(settings)
    edges = list(range(200))
    first = {"signals": {"a": {"n": 1, "edges": edges}, "b": {"n": 1}}, "versions": {"v1": {}}}
    store.add_checkpoint("store-d", first)
    assert await store.flush()
    assert _saved(client, keys, "store-d") == first
    whole = store.checkpoint_bytes["written"]

    second = {"signals": {"a": {"n": 2, "edges": edges}, "b": {"n": 1}}, "versions": {}}
    store.add_checkpoint("store-d", second)  # one count changed, a version went
    assert await store.flush()
    assert _saved(client, keys, "store-d") == second  # the version's field is deleted too
    sent = store.checkpoint_bytes["written"] - whole
    assert 0 < sent < 40 and store.checkpoint_bytes["unchanged"] > 600  # not the edges again

    # a later reader (a restarted worker) gets the whole of it back, and goes on with deltas
    reader = RedisStore(settings.redis_url, keys)
    assert await reader.load_checkpoint("store-d") == second
    reader.add_checkpoint("store-d", second)
    assert await reader.flush() and reader.checkpoint_bytes["written"] == 0
    await store.close()
    await reader.close()


async def test_a_failed_flush_leaves_the_next_delta_against_what_redis_holds(settings):
    """A field changed in a checkpoint that never reached Redis, then kept that value:
    comparing with the failed write's digests would leave Redis with the old value."""
    keys, client, store = _checkpoint_store(settings)
    store.add_checkpoint("store-g", {"x": 1, "y": 1})
    assert await store.flush()
    await store.close()
    store.redis_url = "redis://127.0.0.1:1/0"  # Redis "down"
    store.add_checkpoint("store-g", {"x": 2, "y": 1})
    assert not await store.flush()
    await store.close()
    store.redis_url = settings.redis_url
    store.add_checkpoint("store-g", {"x": 2, "y": 1})
    assert await store.flush()
    assert _saved(client, keys, "store-g") == {"x": 2, "y": 1}
    await store.close()


async def test_a_forgotten_model_is_rewritten_whole(settings):
    """After a rebalance another worker may have written fields this one never saw: the
    next write after ``forget`` replaces the whole hash instead of patching it."""
    keys, client, store = _checkpoint_store(settings)
    store.add_checkpoint("store-r", {"x": 1, "y": 1})
    assert await store.flush()
    client.hset(keys.checkpoint("store-r"), '["z"]', "3")  # the other worker's field
    store.forget("store-r")
    store.add_checkpoint("store-r", {"x": 1, "y": 1})
    assert await store.flush()
    assert _saved(client, keys, "store-r") == {"x": 1, "y": 1}
    await store.close()


async def test_a_checkpoint_written_whole_by_an_older_version_is_read_and_rewritten(settings):
    keys, client, store = _checkpoint_store(settings)
    client.set(keys.checkpoint("store-o"), json.dumps({"signals": {"a": {"n": 1}}}))
    assert await store.load_checkpoint("store-o") == {"signals": {"a": {"n": 1}}}
    store.add_checkpoint("store-o", {"signals": {"a": {"n": 2}}})
    assert await store.flush()
    assert client.type(keys.checkpoint("store-o")) == b"hash"
    assert _saved(client, keys, "store-o") == {"signals": {"a": {"n": 2}}}
    await store.close()


async def test_a_redis_error_while_loading_a_checkpoint_is_retried_not_taken_for_none(settings):
    """Regression test: an error looked like "no checkpoint", so the model restarted blank and
    its next flush overwrote the good checkpoint."""
    keys = RedisKeys(settings.key_prefix)
    client = redis.Redis.from_url(settings.redis_url)
    client.set(keys.checkpoint("store-c"), json.dumps({"saved": True}))
    store = RedisStore("redis://127.0.0.1:1/0", keys)  # Redis "down"
    loading = asyncio.create_task(store.load_checkpoint("store-c"))
    await asyncio.sleep(1.5)
    assert not loading.done() and store.failed_loads >= 1  # waiting, not "None"
    store.redis_url = settings.redis_url  # Redis is back
    assert await asyncio.wait_for(loading, 10) == {"saved": True}
    await store.close()


async def test_waiting_predictions_round_trip_through_redis_buckets(settings):
    """The label join's journal on the real Redis: written in time buckets with a TTL, found
    again for labels up to a day later (from the buffer before a flush, from Redis after),
    and deleted once consumed."""
    from array import array

    from contracts.events import LabelEvent
    from streams.join import StoredPrediction

    keys = RedisKeys(settings.key_prefix)
    store = RedisStore(settings.redis_url, keys, join_ttl_s=86_400.0)

    def waiting(i: int, t: float) -> StoredPrediction:
        return StoredPrediction(
            t, "pend-m", "v1", f"r{i}", 1, 0.9, None, None, 1, None, ("x",), array("d", [i])
        )

    early, late = waiting(1, 1_000.0), waiting(2, 80_000.0)  # 22 hours apart: other buckets
    store.add_pending("pend-m", [early, late], [])
    labels = [LabelEvent("pend-m", "r1", 1, 86_000.0), LabelEvent("pend-m", "r2", 0, 86_000.0)]
    assert {p.request_id for p in await store.load_pending("pend-m", labels)} == {"r1", "r2"}
    assert await store.flush()  # now only Redis has them
    client = redis.Redis.from_url(settings.redis_url)
    bucket_key = keys.pending("pend-m", store.pending.bucket(1_000.0))
    assert client.hexists(bucket_key, "r1") and 0 < client.ttl(bucket_key) <= 86_400 + 7200
    found = {p.request_id: p for p in await store.load_pending("pend-m", labels)}
    assert found["r1"].event().features == {"x": 1.0} and found["r2"].event_time == 80_000.0
    # a restarted worker (a store of its own) reads them back, names and all, though each
    # entry names its layout by id only; and one an older release wrote, names inline
    assert b"x" not in client.hget(bucket_key, "r1").partition(b"\n")[0]
    client.hset(bucket_key, "r0", waiting(0, 1_000.0).to_bytes())  # the older form
    restarted = RedisStore(settings.redis_url, keys, join_ttl_s=86_400.0)
    older = LabelEvent("pend-m", "r0", 1, 86_000.0)
    again = {p.request_id: p for p in await restarted.load_pending("pend-m", [*labels, older])}
    assert {k: p.event().features for k, p in again.items()} == {
        "r0": {"x": 0.0},
        "r1": {"x": 1.0},
        "r2": {"x": 2.0},
    }
    await restarted.close()
    too_late = LabelEvent("pend-m", "r1", 1, 1_000.0 + 86_400.0 + 3 * 3_600.0)
    assert await store.load_pending("pend-m", [too_late]) == []  # beyond the time-to-live
    store.add_pending("pend-m", [], [("r1", 1_000.0)])
    assert await store.flush()
    assert not client.hexists(bucket_key, "r1")
    await store.close()


def _buffer_one_of_each(store: RedisStore, model: str, n: int) -> None:
    from array import array

    from streams.join import StoredPrediction

    store.add_labelled(model, {"n": n})
    store.add_model_counts(model, {"inferences": 1})
    store.add_counts({"inferences.processed": 1}, model)
    store.add_counts({"deadletter.total": 1})
    store.add_checkpoint(model, {"n": n})
    waiting = StoredPrediction(1e3, model, "v1", f"r{n}", 1, 0.9, None, None, 1, None, ("x",),
                               array("d", [n]))  # fmt: skip
    store.add_pending(model, [waiting], [])


def _global(client: redis.Redis, keys: RedisKeys) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(keys.counters()).items()}


def _written(client: redis.Redis, keys: RedisKeys, model: str, before: dict[str, int]) -> dict:
    """What Redis holds of ``model`` (the global counters: their increase since ``before``;
    the module's other tests add to them too)."""
    now = _global(client, keys)
    return {
        "samples": [json.loads(r)["n"] for r in client.lrange(keys.labelled(model), 0, -1)],
        "model_counts": client.hgetall(keys.model_counters(model)),
        "counts": {k: v - before.get(k, 0) for k, v in now.items() if v != before.get(k, 0)},
        "checkpoint": _saved(client, keys, model),
        "waiting": sorted(client.hkeys(keys.pending(model, 0))),
    }


async def test_a_flush_applied_whose_answer_was_lost_is_not_written_twice(settings):
    """Regression test: a transaction that Redis applied, whose answer never came back, was
    given back and sent again: its counters and samples counted twice."""
    keys, client, store = _checkpoint_store(settings)
    before = _global(client, keys)
    _buffer_one_of_each(store, "lost-a", 0)
    lose_answers(store.client, applied=True)
    assert not await store.flush()
    del store.client.pipeline
    _buffer_one_of_each(store, "lost-a", 1)  # the next batch's
    assert await store.flush()
    assert store.settled == {"applied": 1}
    assert _written(client, keys, "lost-a", before) == {
        "samples": [1, 0],
        "model_counts": {b"inferences": b"2"},
        "counts": {"inferences.processed": 2, "deadletter.total": 2},
        "checkpoint": {"n": 1},
        "waiting": [b"r0", b"r1"],
    }
    await store.close()


async def test_a_flush_not_applied_whose_answer_was_lost_is_sent_again(settings):
    """The transaction never ran: its data is sent again, and the transaction itself, should
    it reach Redis after that (still WATCHing its token), is refused."""
    keys, client, store = _checkpoint_store(settings)
    before = _global(client, keys)
    _buffer_one_of_each(store, "lost-n", 0)
    held = lose_answers(store.client, applied=False)
    assert not await store.flush()
    del store.client.pipeline
    # while unsettled, its waiting predictions are still found for labels
    from contracts.events import LabelEvent

    label = LabelEvent("lost-n", "r0", 1, 1_000.0)
    assert [p.request_id for p in await store.load_pending("lost-n", [label])] == ["r0"]
    assert await store.flush()
    assert store.settled == {"not applied": 1}
    expected = {
        "samples": [0],
        "model_counts": {b"inferences": b"1"},
        "counts": {"inferences.processed": 1, "deadletter.total": 1},
        "checkpoint": {"n": 0},
        "waiting": [b"r0"],
    }
    assert _written(client, keys, "lost-n", before) == expected
    [late] = held  # the lost transaction arrives after all: its WATCH refuses it
    with pytest.raises(redis.exceptions.WatchError):
        await late.execute()
    assert _written(client, keys, "lost-n", before) == expected
    await store.close()
