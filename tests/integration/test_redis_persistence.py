"""The local stack's Redis keeps counters and checkpoints across a restart (append-only file).

Regression test: it ran with ``--save "" --appendonly no``, so a restart wiped every counter and
checkpoint (12,245 of 20,000 counted after one, in the streams issue's trial)."""

from __future__ import annotations

import subprocess

import redis

from contracts.redis_keys import RedisKeys
from tests.integration.conftest import REPO


def test_counters_and_checkpoints_survive_a_redis_restart(settings):
    keys = RedisKeys(settings.key_prefix)
    client = redis.Redis.from_url(settings.redis_url)
    client.hincrby(keys.counters(), "inferences.processed", 20_000)
    client.set(keys.checkpoint("persist-m"), b'{"saved": true}')
    assert client.config_get("appendonly")["appendonly"] == "yes"
    proc = subprocess.run(
        ["bash", str(REPO / "deploy" / "stack.sh"), "restart-redis"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "stopping Redis" in proc.stderr  # it really went down
    client = redis.Redis.from_url(settings.redis_url)
    assert int(client.hget(keys.counters(), "inferences.processed")) == 20_000
    assert client.get(keys.checkpoint("persist-m")) == b'{"saved": true}'
