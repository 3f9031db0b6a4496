"""PendingPredictions' buffers: a label's lookup sees every write not yet confirmed in Redis."""

from __future__ import annotations

from array import array

from contracts.events import LabelEvent
from contracts.redis_keys import RedisKeys
from streams.join import StoredPrediction
from streams.pending import PendingPredictions


def _prediction(request_id: str) -> StoredPrediction:
    return StoredPrediction(
        10.0, "m", "v1", request_id, 1, 0.9, None, None, 1, None, ("x",), array("d", [1.0])
    )


class NoRedis:
    """Every lookup below is answered from the buffers; reaching Redis is a failure."""

    def pipeline(self, transaction: bool):
        raise AssertionError("looked in Redis for what the buffers hold")


async def _found(pending: PendingPredictions, *request_ids: str) -> list[str]:
    labels = [LabelEvent("m", rid, 1, 20.0) for rid in request_ids]
    return sorted(p.request_id for p in await pending.load(NoRedis(), "m", labels))


async def test_two_overlapping_flushes_keep_both_their_writes_visible_until_each_ends():
    pending = PendingPredictions(RedisKeys("t"), ttl_s=3600)
    pending.add("m", [_prediction("a")], [])
    first = pending.take()  # a flush under way ...
    pending.add("m", [_prediction("b")], [])
    second = pending.take()  # ... and another beside it (a rebalance's)
    pending.add("m", [_prediction("c")], [])  # buffered, no flush yet
    assert await _found(pending, "a", "b", "c") == ["a", "b", "c"]
    pending.done(second)
    assert await _found(pending, "a", "c") == ["a", "c"]  # the first is still in flight
    assert pending._in_flight == [first[0]]
    pending.done(first)
    assert pending._in_flight == []


async def test_a_failed_flush_gives_its_writes_back_to_the_buffer():
    pending = PendingPredictions(RedisKeys("t"), ttl_s=3600)
    pending.add("m", [_prediction("a")], [])
    taken = pending.take()
    pending.give_back(taken)
    pending.done(taken)
    assert await _found(pending, "a") == ["a"]
    assert pending.has_changes  # written by the next flush
