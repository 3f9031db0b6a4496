"""What the stream worker does with each raw message, independent of Faust.

:class:`MonitorRuntime` decodes a message, routes it to the :class:`ModelMonitor` of its model,
publishes alarms and dead-letter records through a :class:`Publisher`, and buffers metrics and
labelled samples in a store (``add_*`` / ``flush``).  The Faust agents pass messages in; unit
tests pass them in with a list-backed publisher and store.

Nothing a message contains can stop the worker: decoding errors become dead-letter records with
their reason, and any other exception while processing one message is dead-lettered as
``processing_error`` with the exception text.

Detector checkpoints: each flush hands the store every changed model's
:meth:`~streams.monitor.ModelMonitor.checkpoint`, written together with its metrics and counters.
The first message of a model after a start loads that checkpoint, so detectors resume where they
were.  The checkpoint records the last offset applied per topic-partition; a redelivered message
at or below it (Kafka delivers at least once) is counted as ``<kind>.redelivered`` and not
applied twice.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Protocol

from contracts.alarms import (
    CLOUDEVENT_HEADERS,
    Alarm,
    alarm_id,
    encode_alarm,
    encode_resolution,
)
from contracts.columns import EventColumns, column, concat
from contracts.envelopes import Decoded, decode_message
from contracts.events import InvalidEvent, LabelEvent
from contracts.settings import Settings
from detectors import StateError
from streams.deadletter import PROCESSING_ERROR, deadletter_headers
from streams.join import StoredPrediction
from streams.monitor import ModelMonitor, MonitorConfig
from streams.profile import ReferenceProfile
from streams.routing import ORIGIN_HEADER, origin_header, owner_partition

log = logging.getLogger(__name__)


#: A dead-letter record keeps the original bytes up to this size; above it, only the headers
#: (reason, source topic/partition/offset, size): Kafka's default request limit is 1 MB.
DEADLETTER_MAX_VALUE = 512 * 1024


class Publisher(Protocol):
    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Mapping[str, bytes] | None = None,
        *,
        partition: int | None = None,
        timestamp: float | None = None,
    ) -> None: ...

    async def flush(self) -> None:
        """Wait until everything sent so far is written to Kafka."""
        ...


class MetricsSink(Protocol):
    def add_metrics(self, model_id: str, windows: dict[str, dict[str, Any]]) -> None: ...
    def add_labelled(self, model_id: str, sample: dict[str, Any]) -> None: ...
    def add_model_counts(self, model_id: str, counts: dict[str, int]) -> None: ...
    def add_counts(self, counts: dict[str, int], model_id: str | None = None) -> None: ...
    def add_checkpoint(self, model_id: str, checkpoint: dict[str, Any]) -> None: ...
    def forget(self, model_id: str) -> None: ...
    def add_open_alarms(self, model_id: str, alarms: dict[str, dict[str, Any]]) -> None: ...
    def add_series_point(self, model_id: str, point: dict[str, Any]) -> None: ...
    def add_pending(
        self,
        model_id: str,
        written: Sequence[StoredPrediction],
        consumed: Sequence[tuple[str, float]],
    ) -> None: ...
    async def load_pending(
        self, model_id: str, labels: Sequence[LabelEvent]
    ) -> list[StoredPrediction]: ...
    async def load_checkpoint(self, model_id: str) -> dict[str, Any] | None: ...
    async def load_profile(self, model_id: str) -> ReferenceProfile | None: ...
    async def flush(
        self,
        before: Callable[[], Awaitable[None]] | None = None,
        models: set[str] | None = None,
        final: bool = True,
    ) -> bool: ...


@dataclass(frozen=True, slots=True)
class Source:
    """Where a raw message came from (for dead-letter headers)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    timestamp: float | None = None  # the broker's timestamp, seconds since the epoch
    #: (topic, partition, offset) where a forwarded copy was first written (streams.routing)
    origin: tuple[str, int, int] | None = None

    @property
    def first_written(self) -> tuple[str, int, int]:
        """Where the message was first written: its position for redelivery checks and ids."""
        return self.origin or (self.topic, self.partition, self.offset)


Message = tuple[bytes | None, Source]  # a raw value and where it came from


#: changed models written per transaction: a flush of a thousand young models (whole
#: checkpoints of 100-250 KB each) held all their texts and packed commands at once and took a
#: worker from 455 to 827 MB of RSS
FLUSH_MODELS = 64


async def _unknown_partitions(topic: str) -> int | None:
    return None


class MonitorRuntime:
    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        store: MetricsSink,
        config: MonitorConfig | None = None,
        on_alarm: Callable[[Alarm], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        model_configs: Mapping[str, MonitorConfig] | None = None,
    ) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.publisher = publisher
        self.store = store
        self.config = config or MonitorConfig.from_settings(settings)
        self.model_configs = dict(model_configs or {})  # per-model overrides (config file)
        self.on_alarm = on_alarm
        self.monitors: dict[str, ModelMonitor] = {}
        self._loading: dict[str, asyncio.Future[ModelMonitor]] = {}
        self.counts: Counter[str] = Counter()  # lifetime totals, also flushed to the store
        self.reached: dict[tuple[str, int], int] = {}  # highest offset taken per partition
        #: each model's detector readings, refreshed at flushes (Prometheus reads these)
        self.readings: dict[str, list[tuple[str, str, float, float]]] = {}
        self._series_at: dict[str, float] = {}
        #: called after each batch with (kind, seconds, messages): Prometheus hooks in here
        self.batch_seconds: Callable[[str, float, int], None] = lambda kind, s, n: None
        #: global counter increments not yet handed to the store, by the model whose events
        #: they came from (None: no model's), so they land with that model's checkpoint
        self._pending_counts: dict[str | None, Counter[str]] = defaultdict(Counter)
        self._flushing = asyncio.Lock()  # one flush at a time: each writes its models in groups
        self._pending_model_counts: dict[str, Counter[str]] = {}
        self._dirty: set[str] = set()
        self.source_uri = f"/driftline/streams/{settings.worker_name}"
        self._clock = clock
        self._last_seen: dict[str, float] = {}  # model id -> clock() when last used
        #: a source topic's partition count, or None if unknown (the app asks the broker): a
        #: message off its model's owner partition is forwarded there (streams.routing)
        self.partition_count: Callable[[str], Awaitable[int | None]] = _unknown_partitions
        self._partitions: dict[str, int] = {}  # partition_count's answers; cleared on rebalance
        self._partitions_retry: dict[str, float] = {}  # topic -> clock() to ask again after
        self._received: dict[str, set[tuple[str, int]]] = {}  # model -> partitions read from
        self._owners: dict[tuple[str, str], int] = {}  # (topic, model) -> owner partition

    async def monitor(self, model_id: str) -> ModelMonitor:
        """The model's monitor; on first sight, resumed from its checkpoint if there is one.

        Concurrent first messages of one model (the inference and the label agent) share one
        load: the second waits for the first instead of building a monitor of its own."""
        monitor = self.monitors.get(model_id)
        if monitor is not None:
            self._last_seen[model_id] = self._clock()
            return monitor
        if len(self.monitors) >= self.settings.max_models:
            await self._make_room()
        self._last_seen[model_id] = self._clock()
        loading = self._loading.get(model_id)
        if loading is None:
            loading = self._loading[model_id] = asyncio.ensure_future(self._load(model_id))
        return await asyncio.shield(loading)

    async def _load(self, model_id: str) -> ModelMonitor:
        try:
            monitor = ModelMonitor(model_id, self.model_configs.get(model_id, self.config))
            saved = await self.store.load_checkpoint(model_id)
            if saved is None:
                profile = await self.store.load_profile(model_id)
                if profile is not None:
                    monitor.warm_up(profile)
                    self._count("profiles.applied")
            if saved is not None:
                try:
                    monitor.restore(saved)
                    self._count("checkpoints.restored")
                except (StateError, KeyError, TypeError, ValueError) as exc:
                    log.warning("starting %s afresh: unusable checkpoint (%s)", model_id, exc)
                    monitor = ModelMonitor(model_id, self.model_configs.get(model_id, self.config))
                    self._count("checkpoints.discarded")
            self.monitors[model_id] = monitor
            return monitor
        finally:
            self._loading.pop(model_id, None)

    async def handle_inference(self, raw: bytes | None, source: Source) -> None:
        await self.handle_inferences([(raw, source)])

    async def handle_label(self, raw: bytes | None, source: Source) -> None:
        await self.handle_labels([(raw, source)])

    async def handle_inferences(self, messages: Sequence[Message]) -> None:
        """A batch of inference messages (single events or envelopes), as the agent took them
        from the stream: the same outcome as handling each in order, with each model's events
        observed together (:meth:`ModelMonitor.observe_inferences`)."""
        await self._handle(messages, "inferences", "inference", ModelMonitor.observe_inferences)

    async def handle_labels(self, messages: Sequence[Message]) -> None:
        await self._handle(messages, "labels", "label", ModelMonitor.observe_labels)

    async def _handle(
        self, messages: Sequence[Message], kind: str, event_kind: str, observe: Callable
    ) -> None:
        started = time.perf_counter()
        try:
            await self._handle_batch(messages, kind, event_kind, observe)
        finally:
            self.batch_seconds(kind, time.perf_counter() - started, len(messages))

    async def _handle_batch(
        self, messages: Sequence[Message], kind: str, event_kind: str, observe: Callable
    ) -> None:
        by_model: dict[str, list[_Part]] = {}
        held = 0  # events decoded and not yet observed
        for raw, source in messages:
            if held >= self.settings.batch_events:  # a chunk: memory stays bounded
                await self._observe_all(by_model, kind, observe)
                by_model, held = {}, 0
            tp = (source.topic, source.partition)
            self.reached[tp] = max(source.offset, self.reached.get(tp, -1))
            decoded = await self._decode(raw, source, event_kind)
            if decoded is None or not decoded.events:
                continue
            model_id = _model_of(decoded.events)
            if await self._forwarded(model_id, raw, source, kind):
                continue
            self._received.setdefault(model_id, set()).add(tp)
            elements = range(len(decoded.events)) if decoded.is_envelope else None
            by_model.setdefault(model_id, []).append(_Part(decoded.events, source, elements, raw))
            held += len(decoded.events)
        await self._observe_all(by_model, kind, observe)

    async def _observe_all(self, by_model: dict[str, list], kind: str, observe: Callable) -> None:
        for model_id, group in by_model.items():
            await self._observe(model_id, group, kind, observe)

    async def _forwarded(self, model_id: str, raw: bytes | None, source: Source, kind: str) -> bool:
        """Forward a message that is off its model's owner partition; True if it was."""
        if source.origin is not None or raw is None:
            return False  # a copy is applied where it lands: never forwarded twice
        owner = self._owners.get((source.topic, model_id))
        if owner is None:
            partitions = self._partitions.get(source.topic) or await self._count_partitions(
                source.topic
            )
            if not partitions:
                return False
            if len(self._owners) > 4 * self.settings.max_models:
                self._owners.clear()  # model ids are untrusted: keep the cache bounded
            owner = self._owners[(source.topic, model_id)] = owner_partition(model_id, partitions)
        if owner == source.partition:
            return False
        await self.publisher.send(
            source.topic,
            source.key,
            raw,
            {ORIGIN_HEADER: origin_header(source.topic, source.partition, source.offset)},
            partition=owner,
            timestamp=source.timestamp,
        )
        self._count(f"{kind}.forwarded")
        return True

    async def _count_partitions(self, topic: str) -> int | None:
        """Ask once per topic (again after a rebalance); if the broker cannot say, process
        messages where they are and ask again in 30 s."""
        if self._clock() < self._partitions_retry.get(topic, -math.inf):
            return None
        try:
            partitions = await self.partition_count(topic)
        except Exception as exc:  # the broker is away: keep consuming, say so
            log.warning("cannot read the partition count of %s (%s): not forwarding", topic, exc)
            partitions = None
        if partitions:
            self._partitions[topic] = partitions
        else:
            self._partitions_retry[topic] = self._clock() + 30.0
        return partitions

    async def _decode(self, raw: bytes | None, source: Source, event_kind: str) -> Decoded | None:
        """The message's events; what cannot be used is dead-lettered here, with its reason."""
        limit = self.settings.max_message_bytes
        if raw is not None and len(raw) > limit:
            detail = f"{len(raw)} bytes, more than DRIFTLINE_MAX_MESSAGE_BYTES ({limit})"
            await self._deadletter(raw, source, "too_large", detail)
            return None
        try:
            decoded = decode_message(raw, event_kind)
        except InvalidEvent as exc:
            await self._deadletter(raw, source, exc.reason, exc.detail)
            return None
        except Exception as exc:  # a bug must not stop the stream: keep the message, say why
            log.exception(
                "decoding failed for %s[%d]@%d", source.topic, source.partition, source.offset
            )
            await self._deadletter(raw, source, PROCESSING_ERROR, f"{type(exc).__name__}: {exc}")
            return None
        if source.origin is None:  # a forwarded copy's rejects were dead-lettered at its origin
            for index, element, exc in decoded.rejected:
                await self._deadletter(element, source, exc.reason, exc.detail, index)
        return decoded

    async def _observe(self, model_id: str, group: list, kind: str, observe: Callable) -> None:
        """One model's events of a batch, in stream order: skip redeliveries, refuse absurd
        clocks, observe the rest together, publish what they caused."""
        monitor = await self.monitor(model_id)
        applied = monitor.positions
        parts: list[_Part] = []  # what is fresh, message by message
        refused: list[tuple[_Part, InvalidEvent]] = []
        reached: dict[str, int] = {}
        for part in group:
            topic, partition, offset = part.source.first_written
            position = f"{topic}:{partition}"
            if offset <= applied.get(position, -1):
                self._count(f"{kind}.redelivered", len(part.events), model_id)
                continue
            reached[position] = max(offset, reached.get(position, -1))
            part, bad = self._clock_checked(part)
            refused += bad
            if part.events:
                parts.append(part)
        for part, exc in refused:
            element = part.element(0)
            bad_bytes = _event_bytes(part.raw, part.events[0], element)
            await self._deadletter(
                bad_bytes, part.source, exc.reason, exc.detail, element, model_id
            )
        fresh = concat([part.events for part in parts])  # columns stay columns
        if kind == "labels" and monitor.join.journal:
            missing = monitor.join.missing(fresh)
            if missing:  # waiting in Redis: after a restart, or older than the memory holds
                # held: what memory holds now, not looked up, stays until observe() joins it
                # (nothing spills after the block either: nothing awaits before observe)
                with monitor.join.held():
                    monitor.join.adopt(await self.store.load_pending(model_id, missing))
        # From here to the positions' update nothing awaits: a flush (and the checkpoint it
        # writes) sees either none of this batch's effects or all of them with its positions.
        try:
            out = observe(monitor, fresh) if fresh else None
        except Exception as exc:  # a bug must not stop the stream: keep the events, say why
            first = parts[0].source
            log.exception(
                "processing failed for %d events of %s from %s[%d]@%d",
                len(fresh),
                model_id,
                first.topic,
                first.partition,
                first.offset,
            )
            detail = f"{type(exc).__name__}: {exc}"
            for part in parts:
                for j, event in enumerate(part.events):
                    element = part.element(j)
                    bad_bytes = _event_bytes(part.raw, event, element)
                    await self._deadletter(
                        bad_bytes, part.source, PROCESSING_ERROR, detail, element, model_id
                    )
            return
        finally:
            for position, offset in reached.items():
                applied[position] = max(offset, applied.get(position, -1))
            self._dirty.add(model_id)  # the positions moved, at least
        if out is None:
            return
        self._count(f"{kind}.processed", len(fresh), model_id)
        self._count_model(model_id, kind, len(fresh))
        for _, sample in out.labelled:
            self.store.add_labelled(model_id, sample.to_dict())
        if out.labelled:
            self._count_model(model_id, "joined", len(out.labelled))
        for name, n in monitor.join.take_counts().items():
            self._count_model(model_id, name, n)
        starts = list(accumulate((len(part.events) for part in parts), initial=0))
        for position, alarm in out.alarms:
            k = bisect_right(starts, position) - 1
            source, element = parts[k].source, parts[k].element(position - starts[k])
            where = ":".join(map(str, source.first_written))
            if element is not None:
                where += f":{element}"
            await self.publisher.send(
                self.topics.alarms,
                model_id.encode(),
                encode_alarm(alarm, self.source_uri, alarm_id(alarm, where)),
                CLOUDEVENT_HEADERS,
            )
            self._count("alarms.published", 1, model_id)
            self._count_model(model_id, "alarms")
            if self.on_alarm is not None:
                self.on_alarm(alarm)
        for resolution in monitor.resolve_quiet():
            await self.publisher.send(
                self.topics.alarms,
                model_id.encode(),
                encode_resolution(resolution, self.source_uri),
                CLOUDEVENT_HEADERS,
            )
            self._count("alarms.resolved", 1, model_id)
            self._count_model(model_id, "alarms_resolved")

    def _clock_checked(self, part: _Part) -> tuple[_Part, list[tuple[_Part, InvalidEvent]]]:
        """The message's events whose clocks are sane, and each refused one on its own."""
        source = part.source
        limit = self.settings.max_future_s
        if source.timestamp is None or max(column(part.events, "event_time")) <= (
            source.timestamp + limit
        ):
            return part, []  # the usual case, decided at once
        kept, refused = [], []
        for j in range(len(part.events)):
            try:
                self._check_clock(part.events[j], source)
            except InvalidEvent as exc:
                refused.append((part.only(j), exc))
                continue
            kept.append(j)
        return part.only(*kept), refused

    def _check_clock(self, event, source: Source) -> None:
        """An event stamped far after the broker received it (milliseconds sent as seconds, a
        skewed clock) would move every window's "now" ahead and expire the label join: refuse
        it.  Events from the past are fine (replays, backfills, late labels)."""
        limit = self.settings.max_future_s
        if source.timestamp is None or event.event_time <= source.timestamp + limit:
            return
        ahead = event.event_time - source.timestamp
        raise InvalidEvent(
            "invalid_value",
            f"'event_time' is {ahead:.0f}s after the broker's timestamp (at most {limit:.0f}s "
            "allowed): seconds since the epoch expected, not milliseconds",
        )

    async def _deadletter(
        self,
        raw: bytes | None,
        source: Source,
        reason: str,
        detail: str,
        element: int | None = None,
        model_id: str | None = None,
    ) -> None:
        """Copy a bad message (or envelope element) to the dead-letter topic, with the reason;
        ``model_id``: the model whose position covers it (its counts go with its checkpoint)."""
        headers = deadletter_headers(
            reason, detail, source.topic, source.partition, source.offset, self.settings.worker_name
        )
        if element is not None:
            headers["driftline.envelope.index"] = str(element).encode()
        if raw is not None and len(raw) > DEADLETTER_MAX_VALUE:
            headers["driftline.value_omitted"] = str(len(raw)).encode()
            raw = None  # too big to copy: the original is at the source position in the headers
        try:
            await self.publisher.send(self.topics.deadletter, source.key, raw, headers)
        except Exception:  # the dead-letter path must not fail: retry without the value
            log.exception(
                "dead-letter copy of %s[%d]@%d failed",
                source.topic,
                source.partition,
                source.offset,
            )
            headers["driftline.value_omitted"] = str(len(raw or b"")).encode()
            try:
                await self.publisher.send(self.topics.deadletter, source.key, None, headers)
            except Exception:
                log.exception("dead-letter record without value failed too; counted only")
                self._count("deadletter.unsent", 1, model_id)
        self._count("deadletter.total", 1, model_id)
        self._count(f"deadletter.{reason}", 1, model_id)
        log.info(
            "dead-lettered %s[%d]@%d: %s: %s",
            source.topic,
            source.partition,
            source.offset,
            reason,
            detail,
        )

    def _count(self, name: str, n: int = 1, model_id: str | None = None) -> None:
        self.counts[name] += n
        self._pending_counts[model_id][name] += n

    def _count_model(self, model_id: str, name: str, n: int = 1) -> None:
        self._pending_model_counts.setdefault(model_id, Counter())[name] += n

    async def release(self, partitions: set[tuple[str, int]]) -> list[str]:
        """Partitions were taken from this worker (a rebalance): checkpoint, then forget the
        monitors of models whose messages came from them.  Keeping them would let a worker that
        gets the partition back later resume from stale state and overwrite the checkpoint that
        the other worker wrote meanwhile.  Returns the model ids dropped."""
        await self.flush()
        self._partitions.clear()  # the next message asks again: a topic may have grown
        self._partitions_retry.clear()
        self._owners.clear()
        revoked = {f"{topic}:{partition}" for topic, partition in partitions}
        dropped = [
            m
            for m, monitor in self.monitors.items()
            if revoked & set(monitor.positions) or partitions & self._received.get(m, set())
        ]
        for model_id in dropped:
            del self.monitors[model_id]
            self.store.forget(model_id)
            self.readings.pop(model_id, None)
            self._received.pop(model_id, None)
        if dropped:
            log.info("rebalance: released %d models (%s)", len(dropped), ", ".join(dropped[:5]))
        return dropped

    async def _make_room(self) -> None:
        """Too many models in memory: checkpoint, then drop the least recently seen tenth."""
        if not await self.flush():
            return  # Redis is down: keep everything rather than lose state
        by_age = sorted(self.monitors, key=lambda m: self._last_seen.get(m, 0.0))
        self._evict(by_age[: max(1, len(by_age) // 10)], "over DRIFTLINE_MAX_MODELS")

    def _evict(self, model_ids: list[str], why: str) -> None:
        """Forget flushed monitors (their checkpoints are in Redis; they come back on demand)."""
        evicted = [m for m in model_ids if m not in self._dirty and m in self.monitors]
        for model_id in evicted:
            del self.monitors[model_id]
            self.store.forget(model_id)
            self._last_seen.pop(model_id, None)
            self._received.pop(model_id, None)
            self.readings.pop(model_id, None)
        if evicted:
            self._count("models.evicted", len(evicted))
            log.info("evicted %d models from memory (%s)", len(evicted), why)

    async def flush(self) -> bool:
        """Hand metrics snapshots and counters of changed models to the store, then flush it;
        after a successful flush, drop the models idle for ``DRIFTLINE_IDLE_EVICT_S``."""
        ok = await self._flush()
        if ok:
            limit = self._clock() - self.settings.idle_evict_s
            idle = [m for m in self.monitors if self._last_seen.get(m, limit) < limit]
            self._evict(idle, f"idle for {self.settings.idle_evict_s:.0f}s")
        return ok

    async def _flush(self) -> bool:
        """Write the changed models in groups of ``FLUSH_MODELS``, one transaction each: a
        group's checkpoints, metrics and counters are taken together, with nothing awaited
        between them and the model's last events, so each model's state in Redis matches its
        positions whatever group a crash stopped at."""
        async with self._flushing:
            changed, self._dirty = list(self._dirty), set()
            unowned = self._pending_counts.pop(None, None)
            if unowned:  # decoding failures, evictions, restores: with the last group
                self.store.add_counts(dict(unowned))
            groups = [changed[i : i + FLUSH_MODELS] for i in range(0, len(changed), FLUSH_MODELS)]
            for k, group in enumerate(groups or [[]]):
                self._hand_over([m for m in group if m in self.monitors])
                # Alarms, dead letters and forwarded copies of what these checkpoints cover
                # reach Kafka before Redis says their messages were applied: a crash between
                # the two would skip the redelivered messages and never publish what they
                # caused.
                ok = await self.store.flush(
                    before=self.publisher.flush, models=set(group), final=k == len(groups) - 1
                )
                if not ok:  # the store keeps this group's data; the later groups stay dirty
                    self._dirty.update(m for later in groups[k:] for m in later)
                    return False
            return True

    def _hand_over(self, models: list[str]) -> None:
        """The models' metrics snapshots, checkpoints, open alarms, journals and counts, to
        the store."""
        now = self._clock()
        for model_id in models:
            monitor = self.monitors[model_id]
            metrics = monitor.metrics()
            self.store.add_metrics(model_id, metrics)
            # detector readings (the dashboard's series, Prometheus) at most every
            # DRIFTLINE_SERIES_EVERY_S per model, not at every flush (5 s if series are off)
            every = self.settings.series_every_s
            if now - self._series_at.get(model_id, -math.inf) >= (every or 5.0):
                self._series_at[model_id] = now
                self.readings[model_id] = monitor.readings()
                if every:
                    minute = metrics.get("1m", {})
                    # event time, like the alarms the dashboard marks on the same axis
                    t = minute.get("newest_event_time") or time.time()
                    self.store.add_series_point(
                        model_id, series_point(t, minute, self.readings[model_id])
                    )
            self.store.add_checkpoint(model_id, monitor.checkpoint())
            self.store.add_open_alarms(model_id, monitor.book.snapshot())
            if monitor.join.journal:
                self.store.add_pending(model_id, *monitor.join.drain())
            counts = self._pending_model_counts.pop(model_id, None)
            if counts:
                self.store.add_model_counts(model_id, dict(counts))
            counts = self._pending_counts.pop(model_id, None)
            if counts:
                self.store.add_counts(dict(counts), model_id)


#: the 1-minute metrics a dashboard plots
SERIES_METRICS = (
    "events",
    "event_rate_per_s",
    "accuracy",
    "mae",
    "latency_p99_ms",
    "missing_rate",
    "out_of_range_rate",
    "score_mean",
    "labelled",
)


def series_point(
    t: float, window: Mapping[str, Any], readings: list[tuple[str, str, float, float]]
) -> dict[str, Any]:
    """One dashboard point: event time, a few 1-minute metrics, and every detector reading as
    ``"signal/detector": [statistic, threshold]``.

    >>> series_point(10.0, {"events": 5, "accuracy": None}, [("error:error", "cusum", 1.5, 4.0)])
    {'t': 10.0, 'm': {'events': 5}, 'r': {'error:error/cusum': [1.5, 4.0]}}
    """
    metrics = {k: window[k] for k in SERIES_METRICS if window.get(k) is not None}
    return {
        "t": t,
        "m": metrics,
        "r": {f"{s}/{d}": [round(stat, 6), round(thr, 6)] for s, d, stat, thr in readings},
    }


@dataclass(slots=True)
class _Part:
    """A message's events for one model: ``elements``, their indices in an envelope (``None``
    for a single-event message)."""

    events: list[Any]
    source: Source
    elements: Sequence[int] | None
    raw: bytes | None

    def element(self, j: int) -> int | None:
        """The envelope index of event ``j`` (``None`` for a single-event message)."""
        return None if self.elements is None else self.elements[j]

    def only(self, *js: int) -> _Part:
        """The same message with events ``js`` only."""
        elements = None if self.elements is None else [self.elements[j] for j in js]
        return _Part([self.events[j] for j in js], self.source, elements, self.raw)


def _event_bytes(raw: bytes | None, event, element: int | None) -> bytes | None:
    """What to dead-letter for one event: the message itself, or the element of an envelope."""
    return raw if element is None else event.to_json()


def _model_of(events: Sequence[Any]) -> str:
    """The model of a message's events (all one model), read without building an event from
    columns."""
    return events.model_id if isinstance(events, EventColumns) else events[0].model_id
