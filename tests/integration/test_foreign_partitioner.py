"""Labels from a librdkafka producer (kcat: CRC32 key hashing) join predictions from a Java-style
producer (aiokafka: murmur2), across two workers in one consumer group.

The streams issue's finding: a label from such a client lands on another partition than its
prediction, possibly at another worker, so the join could not rely on co-partitioning.  The
worker that reads a message off its model's owner partition forwards it there
(:mod:`streams.routing`); every model ends with one monitor that saw all its predictions and
labels.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess
import time
import uuid
import zlib

import redis

from contracts.events import InferenceEvent, LabelEvent
from contracts.redis_keys import RedisKeys
from streams.producer import EventProducer
from streams.routing import owner_partition
from streams.topics import ensure_topics
from tests.integration.conftest import read_topic, start_worker, stop_worker, wait_until

PARTITIONS = 8
PER_MODEL = 300
ROUND = 50  # events per model per round


def _labels(events) -> list[str]:
    """kcat -K '\\t' input lines: the model id as the key, a tab, the label event."""
    return [
        f"{e.model_id}\t{LabelEvent(e.model_id, e.request_id, 1, e.event_time).to_json().decode()}"
        for e in events
    ]


def _models() -> list[str]:
    """Models whose CRC32 partition (librdkafka's default for a key) is not their owner."""
    names = (f"crc-{i}" for i in range(1000))
    off = [
        m for m in names if zlib.crc32(m.encode()) % PARTITIONS != owner_partition(m, PARTITIONS)
    ]
    return off[:6]


def _kcat(settings, topic: str, lines: list[str]) -> None:
    kcat = shutil.which("kcat")
    assert kcat, "kcat is missing: `make test` installs Debian's kcat package"
    proc = subprocess.run(
        [kcat, "-P", "-b", settings.kafka_bootstrap, "-t", topic, "-K", "\t"],
        input="\n".join(lines) + "\n",
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


async def test_labels_from_kcat_join_predictions_from_aiokafka_across_two_workers(
    settings, tmp_path
):
    group = dataclasses.replace(
        settings.isolated(f"{settings.app_id}-fp-{uuid.uuid4().hex[:4]}"), partitions=PARTITIONS
    )
    await ensure_topics(group)
    models = _models()
    now = time.time()
    inferences = [
        InferenceEvent(m, "v1", f"{m}-{i}", now + i * 0.01, {"x": float(i % 7)}, i % 2, score=0.9)
        for i in range(PER_MODEL)
        for m in models
    ]
    total = len(inferences)
    client = redis.Redis.from_url(group.redis_url, decode_responses=True)
    keys = RedisKeys(group.key_prefix)

    def counter(name: str) -> int:
        return int(client.hget(keys.counters(), name) or 0)

    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    a, b = start_worker(group, logs[0]), start_worker(group, logs[1])
    try:
        # rounds: the labels of one round go out (kcat) while the next round's predictions do
        # (aiokafka), so both workers hold live state for the same models at once
        rounds = [
            inferences[i : i + ROUND * len(models)] for i in range(0, total, ROUND * len(models))
        ]
        async with EventProducer(group) as producer:
            for number, chunk in enumerate(rounds):
                for event in chunk:
                    await producer.send_inference(event)
                await producer.flush()
                if number:
                    await asyncio.to_thread(
                        _kcat, group, group.topics.labels, _labels(rounds[number - 1])
                    )
                await asyncio.sleep(0.5)
        await asyncio.to_thread(_kcat, group, group.topics.labels, _labels(rounds[-1]))
        await wait_until(lambda: counter("labels.processed") >= total, 120, "the labels")
        await wait_until(lambda: counter("inferences.processed") >= total, 120, "predictions")
        time.sleep(2)  # a flush after the last label: a double count would show now
        # the test means something only if kcat put labels off their owner partition
        records = await read_topic(
            group, group.topics.labels, lambda got: len(got) >= total + counter("labels.forwarded")
        )
        first = [r for r in records if not r.headers]  # as kcat wrote them
        off_owner = [r for r in first if r.partition != owner_partition(r.key.decode(), PARTITIONS)]
        assert len(first) == total and len(off_owner) == total, "kcat used its CRC32 partitioner"
        assert counter("labels.forwarded") == len(off_owner)
        assert counter("inferences.forwarded") == 0
        assert counter("labels.processed") == total
        for model in models:
            counts = client.hgetall(keys.model_counters(model))
            assert int(counts["joined"]) == PER_MODEL, (model, counts)
            window = client.hgetall(keys.metrics(model, "1h"))
            assert (window["events"], window["labelled"]) == (str(PER_MODEL), str(PER_MODEL)), (
                model,
                window,
            )
    finally:
        for proc, log in ((a, logs[0]), (b, logs[1])):
            if proc.poll() is None:
                stop_worker(proc, log)
        stale = client.keys(f"{group.key_prefix}:*")
        if stale:
            client.delete(*stale)
