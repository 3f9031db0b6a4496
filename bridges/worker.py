"""``driftline bridge``: alarms in, pages out; an alarm's offset is committed only after every
sink has it, has parked it, or has refused it for good.

Per batch of alarms-topic records:

1. each record becomes a :class:`~bridges.notice.Notice`; one that is not an alarm goes to the
   dead-letter topic (reason ``invalid_alarm``); one below ``DRIFTLINE_BRIDGE_MIN_SEVERITY`` is
   counted and skipped;
2. every sink gets the notices at once (each sink builds its own requests: Alertmanager one
   per model, the others one per notice) and retries transient failures
   (:mod:`bridges.delivery`);
3. a notice a sink still could not deliver is **parked** on ``<prefix>.alarms.retry`` with the
   sink's name, the attempt number and the time it may be tried again; one a receiver refused
   for good (HTTP 400, 401, 404, ...) is **dead-lettered** with the status, not retried;
4. only then is the batch's offset committed.  A bridge killed before that reads the batch
   again: pages are at least once, and receivers pair duplicates by dedup key / fingerprint.

A second loop reads the retry topic: waits until a parked notice is due, tries its one sink
again, and parks it again with a doubled delay (up to ``park_max_s``) until it is delivered or
``park_attempts`` tries have failed, when it is dead-lettered (reason ``undeliverable``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from bridges import telemetry
from bridges.delivery import RetryPolicy, post_json
from bridges.notice import Notice, notice_from_record
from bridges.sinks import Sink
from contracts.alarms import SEVERITIES, InvalidAlarm
from contracts.settings import Settings
from streams.deadletter import PROCESSING_ERROR, deadletter_headers, read_headers

log = logging.getLogger(__name__)

SINK_HEADER = "driftline.bridge.sink"
ATTEMPT_HEADER = "driftline.bridge.attempt"
DUE_HEADER = "driftline.bridge.due"  # unix time the parked notice may be tried again
DETAIL_HEADER = "driftline.bridge.last_error"


@dataclass(frozen=True)
class BridgeConfig:
    min_severity: str = "warning"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    park_initial_s: float = 30.0  # first wait of a parked notice
    park_max_s: float = 900.0
    park_attempts: int = 48  # tries from the retry topic before it is dead-lettered
    batch_max: int = 200
    start_at: str = "earliest"  # a new consumer group's first position ("latest": new alarms only)

    def __post_init__(self) -> None:
        if self.min_severity not in SEVERITIES:
            raise ValueError(f"min_severity must be one of {', '.join(SEVERITIES)}")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> BridgeConfig:
        env = dict(os.environ if env is None else env)
        try:
            return cls(
                min_severity=env.get("DRIFTLINE_BRIDGE_MIN_SEVERITY", cls.min_severity),
                retry=RetryPolicy(attempts=int(env.get("DRIFTLINE_BRIDGE_ATTEMPTS", 5))),
                park_initial_s=float(env.get("DRIFTLINE_BRIDGE_PARK_S", cls.park_initial_s)),
            )
        except ValueError as exc:
            raise ValueError(f"bridge settings: {exc}") from None


@dataclass(frozen=True)
class Parked:
    """A notice waiting on the retry topic for one sink."""

    sink: str
    attempt: int
    due: float
    last_error: str

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            (SINK_HEADER, self.sink.encode()),
            (ATTEMPT_HEADER, str(self.attempt).encode()),
            (DUE_HEADER, repr(self.due).encode()),
            (DETAIL_HEADER, self.last_error.encode()),
        ]

    @classmethod
    def from_headers(cls, headers) -> Parked:
        h = read_headers(headers)
        return cls(
            h[SINK_HEADER], int(h[ATTEMPT_HEADER]), float(h[DUE_HEADER]), h.get(DETAIL_HEADER, "")
        )


class BridgeWorker:
    def __init__(
        self,
        settings: Settings,
        sinks: Sequence[Sink],
        config: BridgeConfig | None = None,
        group_id: str | None = None,
    ) -> None:
        if not sinks:
            raise ValueError(
                "no paging sink is configured: set DRIFTLINE_ALERTMANAGER_WEBHOOK_URL, "
                "DRIFTLINE_PAGERDUTY_ROUTING_KEY, DRIFTLINE_WEBHOOK_URL or "
                "DRIFTLINE_SLACK_WEBHOOK_URL"
            )
        names = [s.name for s in sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"two sinks share a name: {names}")
        self.settings = settings
        self.sinks = {s.name: s for s in sinks}
        self.config = config or BridgeConfig()
        self.group_id = group_id or f"{settings.topic_prefix}-bridge"
        self.worker_name = f"bridge-{settings.worker_name}"
        self.ready = asyncio.Event()
        self.stats: Counter[str] = Counter()  # also exported as Prometheus metrics
        self._handled: dict[tuple[str, int], int] = {}  # next offset per partition
        self._session: aiohttp.ClientSession | None = None
        self._producer = None

    # -- the loops -------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        topics = self.settings.topics

        def consumer(topic: str, group: str, longest_wait_s: float) -> AIOKafkaConsumer:
            return AIOKafkaConsumer(
                topic,
                bootstrap_servers=self.settings.bootstrap_list,
                group_id=group,
                enable_auto_commit=False,
                auto_offset_reset=self.config.start_at,
                session_timeout_ms=10_000,
                heartbeat_interval_ms=3_000,
                # a consumer that does not poll for this long is taken out of its group
                max_poll_interval_ms=int((longest_wait_s + 300) * 1000),
            )

        # the main loop may spend the retries of one batch between polls; the retry loop
        # waits up to park_max_s for a parked notice to fall due
        retrying = self.config.retry.attempts * (
            self.config.retry.timeout_s + self.config.retry.retry_after_cap_s
        )
        alarms = consumer(topics.alarms, self.group_id, retrying)
        parked = consumer(topics.alarms_retry, f"{self.group_id}-retry", self.config.park_max_s)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_list, acks="all", enable_idempotence=True
        )
        self._session = aiohttp.ClientSession()
        await self._producer.start()
        await alarms.start()
        await parked.start()
        try:
            await _wait_assigned(alarms, parked)
            log.info(
                "bridge ready: %s -> %s", topics.alarms, ", ".join(map(repr, self.sinks.values()))
            )
            self.ready.set()
            await asyncio.gather(self._main(alarms, stop), self._retries(parked, stop))
        finally:
            await alarms.stop()
            await parked.stop()
            await self._producer.stop()
            await self._session.close()

    async def _main(self, consumer, stop: asyncio.Event) -> None:
        from aiokafka import TopicPartition

        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=300, max_records=self.config.batch_max)
            for tp, records in batches.items():
                if not await _unless_stopped(self.handle(records), stop):
                    return  # stopped mid-delivery: not committed, read again next time
                await consumer.commit(
                    {TopicPartition(tp.topic, tp.partition): records[-1].offset + 1}
                )
                self._handled[(tp.topic, tp.partition)] = records[-1].offset + 1
            self._record_lag(consumer)

    async def _retries(self, consumer, stop: asyncio.Event) -> None:
        from aiokafka import TopicPartition

        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=300, max_records=20)
            for tp, records in batches.items():
                for record in records:
                    if not await self._wait_due(record, stop):
                        return  # stopping: this record is read again next time
                    if not await _unless_stopped(self.handle_parked(record), stop):
                        return
                    await consumer.commit(
                        {TopicPartition(tp.topic, tp.partition): record.offset + 1}
                    )

    # -- one batch ---------------------------------------------------------------------------
    async def handle(self, records) -> None:
        """Deliver one batch of alarms-topic records to every sink (parking or dead-lettering
        what cannot be delivered); returns when each record has a place."""
        accepted: list[tuple[Notice, object]] = []
        for record in records:
            try:
                notice = notice_from_record(record.value)
            except InvalidAlarm as exc:
                self._count("invalid")
                await self._deadletter(record, "invalid_alarm", str(exc))
                continue
            if not notice.severity_at_least(self.config.min_severity):
                self._count("filtered")
                continue
            self._count("accepted")
            accepted.append((notice, record))
        if accepted:
            await asyncio.gather(*(self._deliver(s, accepted, 0) for s in self.sinks.values()))

    async def handle_parked(self, record) -> None:
        try:
            parked = Parked.from_headers(record.headers)
            notice = notice_from_record(record.value)
        except (KeyError, ValueError, InvalidAlarm) as exc:
            await self._deadletter(record, "invalid_alarm", f"bad parked record: {exc!r}")
            return
        sink = self.sinks.get(parked.sink)
        if sink is None:
            await self._deadletter(
                record, "undeliverable", f"parked for sink {parked.sink!r}, not configured now"
            )
            return
        await self._deliver(sink, [(notice, record)], parked.attempt)

    async def _deliver(self, sink: Sink, items: list[tuple[Notice, object]], parked_attempt: int):
        record_of = {id(n): r for n, r in items}
        retry = self.config.retry
        if parked_attempt:  # from the retry topic: one short round, then park again
            retry = RetryPolicy(attempts=2, initial_s=retry.initial_s, timeout_s=retry.timeout_s)
        try:
            requests = sink.build([n for n, _ in items])
        except Exception as exc:  # a bug of ours must not stop paging: keep the alarms, say why
            log.exception("%s could not format %d notices", sink.name, len(items))
            for _, record in items:
                detail = f"{sink.name}: {type(exc).__name__}: {exc}"
                await self._deadletter(record, PROCESSING_ERROR, detail, sink.name)
            self._outcome(sink.name, "rejected", len(items))
            return
        covered = {id(n) for notices, _ in requests for n in notices}
        if len(covered) < len(items):  # per incident: the incident's other alarms
            self._outcome(sink.name, "grouped", len(items) - len(covered))
        for notices, body in requests:
            outcome = await post_json(
                self._session,
                sink.url,
                body,
                retry,
                sink.content_type,
                on_retry=lambda detail, s=sink.name: self._retrying(s, detail),
            )
            records = [record_of[id(n)] for n in notices]
            if outcome.delivered:
                telemetry.DELIVERY_SECONDS.labels(sink.name).observe(outcome.seconds)
                self._delivered(sink.name, notices, len(records))
            elif outcome.permanent:
                for record in records:
                    await self._deadletter(
                        record, "rejected", f"{sink.name} refused it: {outcome.detail}", sink.name
                    )
                self._outcome(sink.name, "rejected", len(records))
                log.error(
                    "%s refused %d notices (%s): dead-lettered, not retried",
                    sink.name,
                    len(records),
                    outcome.detail,
                )
            else:
                for record in records:
                    await self._park(record, sink.name, parked_attempt + 1, outcome.detail)

    async def _park(self, record, sink: str, attempt: int, error: str) -> None:
        if attempt > self.config.park_attempts:
            await self._deadletter(
                record,
                "undeliverable",
                f"{sink}: {attempt - 1} parked tries failed ({error})",
                sink,
            )
            self._outcome(sink, "rejected", 1)
            return
        delay = min(self.config.park_initial_s * 2 ** (attempt - 1), self.config.park_max_s)
        parked = Parked(sink, attempt, time.time() + delay, error)
        await self._producer.send_and_wait(
            self.settings.topics.alarms_retry,
            record.value,
            key=record.key,
            headers=parked.headers(),
        )
        self._outcome(sink, "parked", 1)
        log.warning("%s: not delivered (%s); parked, try %d in %.0fs", sink, error, attempt, delay)

    async def _deadletter(self, record, reason: str, detail: str, sink: str = "") -> None:
        headers = deadletter_headers(
            reason, detail, record.topic, record.partition, record.offset, self.worker_name
        )
        if sink:
            headers[SINK_HEADER] = sink.encode()
        await self._producer.send_and_wait(
            self.settings.topics.deadletter,
            record.value,
            key=record.key,
            headers=list(headers.items()),
        )
        self.stats[f"deadlettered.{reason}"] += 1

    async def _wait_due(self, record, stop: asyncio.Event) -> bool:
        try:
            due = Parked.from_headers(record.headers).due
        except (KeyError, ValueError):
            return True  # handle_parked dead-letters it
        while (left := due - time.time()) > 0:
            if stop.is_set():
                return False
            await asyncio.sleep(min(left, 0.5))
        return not stop.is_set()

    # -- bookkeeping -------------------------------------------------------------------------
    def _record_lag(self, consumer) -> None:
        """Records between what this bridge has handled and each partition's end."""
        for tp in consumer.assignment():
            end, handled = consumer.highwater(tp), self._handled.get((tp.topic, tp.partition))
            if end is not None and handled is not None:
                telemetry.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(
                    max(0, end - handled)
                )

    def _count(self, outcome: str) -> None:
        self.stats[f"notices.{outcome}"] += 1
        telemetry.NOTICES.labels(outcome).inc()

    def _outcome(self, sink: str, outcome: str, n: int) -> None:
        self.stats[f"{sink}.{outcome}"] += n
        telemetry.DELIVERIES.labels(sink, outcome).inc(n)

    def _delivered(self, sink: str, notices: list[Notice], n: int) -> None:
        self._outcome(sink, "delivered", n)
        for notice in notices:
            log.info("%s: delivered %s %s", sink, notice.status, notice.dedup_key)

    def _retrying(self, sink: str, detail: str) -> None:
        self.stats[f"{sink}.retries"] += 1
        telemetry.RETRIES.labels(sink).inc()
        log.info("%s: %s; trying again", sink, detail)


async def _unless_stopped(work, stop: asyncio.Event) -> bool:
    """Run ``work`` unless ``stop`` is set first (then cancel it); True when it finished."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


async def _wait_assigned(*consumers, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(c.assignment() for c in consumers):
        if time.monotonic() > deadline:
            raise TimeoutError("the bridge's consumers got no partitions")
        await asyncio.sleep(0.1)
