"""The learner's incremental read of labelled rows (learners/samples.NewestRows) against a real
Redis list written as the monitoring worker writes it: pushed at the head, trimmed at the tail.
After every read it must hold exactly what a full read (``read_rows``) holds."""

from __future__ import annotations

import json
import random

import pytest
import redis

from contracts.redis_keys import RedisKeys
from learners.samples import NewestRows, read_rows

pytestmark = pytest.mark.integration


def _push(client, key, rows, keep):
    pipe = client.pipeline()
    for row in rows:
        pipe.lpush(key, row)
    pipe.ltrim(key, 0, keep - 1)
    pipe.execute()


def _row(i: int) -> bytes:
    return json.dumps({"request_id": f"r{i}", "label_time": float(i), "label": i % 3}).encode()


def test_incremental_reads_equal_full_reads_through_pushes_trims_and_gaps(settings):
    client = redis.Redis.from_url(settings.redis_url)
    keys = RedisKeys(settings.key_prefix)
    key, keep = keys.labelled("rows"), 300
    digest = lambda row: (row["request_id"], row["label"])  # noqa: E731
    reader = NewestRows(client, keys, keep, digest)
    rng, n = random.Random(5), 0
    assert reader.read("rows") == []
    for step in range(200):
        burst = rng.choice([0, 1, 3, 40, 120] + [keep + 50] * (step % 50 == 7))
        rows = [_row(n + i) for i in range(burst)]
        if step == 90:
            rows[1:1] = [b"{not json"]  # a corrupt row is skipped by both
        _push(client, key, rows, keep)
        n += burst
        expected = [digest(row) for row in read_rows(client, keys, "rows", keep)]
        assert reader.read("rows") == expected, f"step {step}"
    # full reads: the first, and one per burst larger than what the list keeps
    assert 2 <= reader.full_reads <= 8
    client.delete(key)
    assert reader.read("rows") == []
    _push(client, key, [_row(0), _row(1)], keep)
    assert reader.read("rows") == [("r1", 1), ("r0", 0)]


def test_the_reader_keeps_up_with_rows_pushed_between_its_two_commands(settings):
    """LPOS then LRANGE: rows pushed in between shift the newest-read row down; the read sees
    that (its row no longer ends the range) and asks again."""
    client = redis.Redis.from_url(settings.redis_url)
    keys = RedisKeys(settings.key_prefix)
    key = keys.labelled("racing")
    _push(client, key, [_row(i) for i in range(10)], 100)
    reader = NewestRows(client, keys, 100, lambda row: row["request_id"])
    reader.read("racing")
    _push(client, key, [_row(i) for i in range(10, 15)], 100)
    lpos, pushed = client.lpos, []

    def lpos_then_push(*args, **kwargs):
        found = lpos(*args, **kwargs)
        if not pushed:  # once, right after the first LPOS
            pushed.append(True)
            _push(client, key, [_row(i) for i in range(15, 18)], 100)
        return found

    client.lpos = lpos_then_push
    assert reader.read("racing") == [f"r{i}" for i in reversed(range(18))]
    assert reader.full_reads == 1
