"""Faust agents: thin loops that hand each raw message to the :class:`MonitorRuntime`."""

from __future__ import annotations

import logging

import faust

from streams.runtime import MonitorRuntime, Source

log = logging.getLogger(__name__)


def _source(event: faust.EventT) -> Source:
    message = event.message
    return Source(message.topic, message.partition, message.offset, message.key, message.timestamp)


def register(app: faust.App, publisher, runtime: MonitorRuntime) -> None:
    topics = runtime.topics
    inferences = publisher.topic(topics.inferences)
    labels = publisher.topic(topics.labels)

    @app.agent(inferences, name="monitor-inferences")
    async def monitor_inferences(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await runtime.handle_inference(event.value, _source(event))

    @app.agent(labels, name="join-labels")
    async def join_labels(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await runtime.handle_label(event.value, _source(event))

    @app.timer(interval=runtime.settings.metrics_flush_s, name="flush-metrics")
    async def flush_metrics() -> None:
        await runtime.flush()

    @app.on_partitions_revoked.connect
    async def on_partitions_revoked(sender, revoked, **kwargs) -> None:
        await runtime.release({(tp.topic, tp.partition) for tp in revoked})

    @app.on_rebalance_complete.connect
    async def on_rebalance_complete(sender, **kwargs) -> None:
        log.info("driftline worker ready: consuming %s and %s", topics.inferences, topics.labels)
