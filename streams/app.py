"""The one Faust app: topics, agents and the metrics timer, built from :class:`Settings`.

Run it with ``driftline worker`` (see :mod:`driftline.cli`).  Faust is imported here and in
:mod:`streams.agents` only.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import faust

from contracts.redis_keys import RedisKeys
from contracts.settings import Settings
from streams import agents
from streams.config_file import WorkerConfig
from streams.monitor import MonitorConfig
from streams.runtime import MonitorRuntime
from streams.store import RedisStore


class FaustPublisher:
    """Publisher over the app's producer.  Records go out at once; the runtime flushes the
    producer before each Redis flush (and so before any offset commit), so alarms, dead-letter
    records and forwarded copies are at-least-once with the input."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._topics: dict[str, faust.TopicT] = {}

    def topic(self, name: str) -> faust.TopicT:
        if name not in self._topics:
            self._topics[name] = self.app.topic(
                name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
            )
        return self._topics[name]

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Mapping[str, bytes] | None = None,
        *,
        partition: int | None = None,
        timestamp: float | None = None,
    ) -> None:
        # force: never attached to an input offset's commit (Faust attaches what is sent while
        # an event is current); flush() makes it durable before the checkpoint
        await self.topic(topic).send(
            key=key,
            value=value,
            headers=dict(headers) if headers else None,
            partition=partition,
            timestamp=timestamp,
            force=True,
        )

    async def flush(self) -> None:
        await self.app.producer.flush()


#: The longest the broker may hold a fetch with nothing new (Faust fixes it at 1,500 ms).
#: aiokafka keeps one fetch in flight per broker, and leaves out of it the partitions whose
#: records are still being handed over: a fetch for the quiet rest can then hold back the busy
#: partition's next records for the full wait.  Measured here (one model, envelopes of 20 at
#: 10,000 events/s): alarm latency 1.0-1.6 s in one run of three at 1,500 ms; at 25 ms the
#: largest of 52 alarms in 4 runs took 216 ms.  An idle worker then sends 40 small fetches/s.
FETCH_MAX_WAIT_MS = 25


def _shorter_fetch_wait() -> None:
    """Make Faust's worker consumer use :data:`FETCH_MAX_WAIT_MS` (once per process)."""
    from faust.transport.drivers import aiokafka as driver

    thread = driver.AIOKafkaConsumerThread
    if getattr(thread, "_driftline_fetch_wait", False):
        return
    create = thread._create_worker_consumer

    def create_worker_consumer(self, transport):
        consumer = create(self, transport)
        if hasattr(consumer, "_fetch_max_wait_ms"):
            consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        else:  # an aiokafka without the attribute: keep Faust's wait, say so
            logging.getLogger(__name__).warning(
                "cannot shorten the consumer's fetch wait: alarms may wait up to 1.5 s"
            )
        return consumer

    thread._create_worker_consumer = create_worker_consumer
    thread._driftline_fetch_wait = True


#: Python's cyclic garbage collector runs a young-generation pass every 700 net allocations by
#: default, and a full pass (through every live object: Faust, aiokafka, each model's monitor)
#: every 100 of those.  A worker allocates a few dozen objects per event (decoded JSON, the
#: event, its waiting prediction), almost none of them in cycles, so those passes find nothing
#: and cost time: in process, 200,000 envelope events over 10 models ran at 54,000/s with the
#: default and 65,000/s with these thresholds (bench/pipeline.py measures the worker).
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """For a long-running worker: move what start-up allocated (modules, the app) out of the
    collector's sight for good (``gc.freeze``), and collect young objects every
    :data:`GC_THRESHOLDS` allocations instead of every 700."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def create_app(settings: Settings | None = None) -> tuple[faust.App, MonitorRuntime]:
    """The Faust app and its runtime; ``DRIFTLINE_CONFIG`` (a ValueError names a bad key)
    sets limits, every model's monitor and per-model overrides."""
    settings = settings or Settings.from_env()
    config = None
    if settings.config_file:
        config = WorkerConfig.from_file(settings.config_file, MonitorConfig.from_settings(settings))
        settings = config.settings(settings)
    _shorter_fetch_wait()
    state_dir = Path(os.environ.get("DRIFTLINE_STATE_DIR", "~/.cache/driftline/state")).expanduser()
    state_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        datadir=str(state_dir / "{conf.id}-data"),  # not the working directory
        broker=[f"kafka://{server}" for server in settings.bootstrap_list],
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        producer_acks=-1,
        # Envelopes are large messages: fetch up to 8 MiB per partition per request (Faust's
        # default, 1 MiB, held envelopes of 100 events to ~22 messages a fetch).
        consumer_max_fetch_size=8 * 1024 * 1024,
        # A worker that died is noticed after 10 s, not Faust's default 60 s: its partitions
        # (and a restarted worker) wait that long in "(Re-)joining group".
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
    )
    publisher = FaustPublisher(app)
    store = RedisStore(
        settings.redis_url,
        RedisKeys(settings.key_prefix),
        settings.labelled_keep,
        settings.join_ttl_s,
        settings.series_keep,
        cluster=settings.redis_cluster,
    )
    runtime = MonitorRuntime(
        settings,
        publisher,
        store,
        config=None if config is None else config.default,
        model_configs=None if config is None else config.models,
    )
    # Declare the output topics up front so they exist (with our partition count) at start-up.
    for name in (settings.topics.alarms, settings.topics.deadletter, settings.topics.model_updates):
        publisher.topic(name)
    agents.register(app, publisher, runtime)
    return app, runtime
