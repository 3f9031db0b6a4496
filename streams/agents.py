"""Faust agents: thin loops that hand batches of raw messages to the :class:`MonitorRuntime`.

Each agent takes up to ``DRIFTLINE_BATCH_MAX`` messages, or what arrived within
``DRIFTLINE_BATCH_WAIT_S``, and hands them over together, so the monitor updates each model's
detectors once per batch instead of once per event.  Messages are taken without acknowledging
them (``noack_take``); :class:`~streams.acks.AckAfterFlush` acknowledges them after the Redis
flush that holds their effects, so a committed offset never runs ahead of what Redis holds.
"""

from __future__ import annotations

import asyncio
import functools
import logging

import faust

from streams.acks import AckAfterFlush
from streams.deadletter import read_headers
from streams.routing import ORIGIN_HEADER, parse_origin
from streams.runtime import MonitorRuntime, Source
from streams.topics import partition_count

log = logging.getLogger(__name__)


def _source(event: faust.EventT) -> Source:
    message = event.message
    origin = None
    if message.headers:  # only a forwarded copy has one (streams.routing)
        origin = parse_origin(read_headers(message.headers).get(ORIGIN_HEADER))
    return Source(
        message.topic, message.partition, message.offset, message.key, message.timestamp, origin
    )


def register(app: faust.App, publisher, runtime: MonitorRuntime) -> None:
    topics = runtime.topics
    inferences = publisher.topic(topics.inferences)
    labels = publisher.topic(topics.labels)

    # a message off its model's owner partition is forwarded there (streams.routing)
    runtime.partition_count = functools.partial(partition_count, runtime.settings)
    size, wait = runtime.settings.batch_max, runtime.settings.batch_wait_s
    gate = AckAfterFlush(runtime.flush, max_held=20 * size)

    @app.agent(inferences, name="monitor-inferences")
    async def monitor_inferences(stream: faust.StreamT) -> None:
        async for batch in stream.noack_take(size, within=wait):
            await runtime.handle_inferences([(event.value, _source(event)) for event in batch])
            await gate.hold(batch)

    @app.agent(labels, name="join-labels")
    async def join_labels(stream: faust.StreamT) -> None:
        async for batch in stream.noack_take(size, within=wait):
            await runtime.handle_labels([(event.value, _source(event)) for event in batch])
            await gate.hold(batch)

    stopping: list[asyncio.Task] = []

    async def flush_while_stopping() -> None:
        # A stopping app (SIGTERM) stops its timers first, then waits until every message it
        # handed out is acknowledged (Faust's stream_wait_empty), and ours are acknowledged by
        # a flush: without this a worker stopped under load waited until SIGKILL.  A plain task,
        # which the app does not stop, flushes from the moment it stops until the process ends.
        while not app.should_stop:
            await asyncio.sleep(0.1)
        while True:
            await gate.flush()
            await asyncio.sleep(0.2)

    @app.timer(interval=runtime.settings.flush_s, name="flush-metrics")
    async def flush_metrics() -> None:
        if gate.rested(runtime.settings.flush_share):
            await gate.flush()

    @app.on_partitions_revoked.connect
    async def on_partitions_revoked(sender, revoked, **kwargs) -> None:
        await gate.flush()
        await runtime.release({(tp.topic, tp.partition) for tp in revoked})

    @app.on_rebalance_complete.connect
    async def on_rebalance_complete(sender, **kwargs) -> None:
        if not stopping:  # before the first message is taken
            stopping.append(asyncio.get_running_loop().create_task(flush_while_stopping()))
        log.info("driftline worker ready: consuming %s and %s", topics.inferences, topics.labels)
