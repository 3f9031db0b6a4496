"""The learner worker: alarms in, gated model updates out (aiokafka; never Faust).

For each drift alarm it starts one retrain task for that model: wait until enough labelled
samples *from after the alarm* have arrived in Redis (the new regime is what the challenger must
learn; the data before the change is what made the champion), train a challenger from the
current champion in a worker thread (never on the event loop), and, only if the challenger wins
on held-out recent data, register it and publish a :class:`~learners.updates.ModelUpdate`.
Alarms for a model that arrive while it is being retrained, or within ``cooldown_s`` of its last
attempt, are acknowledged and skipped: one drift usually fires several detectors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis import asyncio as aioredis

from contracts.alarms import Alarm, InvalidAlarm, decode_alarm
from contracts.redis_keys import RedisKeys
from contracts.settings import Settings
from learners.gate import GateVerdict, champion_vs_challenger
from learners.registry import ModelRegistry, recent_samples
from learners.updates import ModelUpdate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LearnerDecision:
    alarm: Alarm
    verdict: GateVerdict | None
    update: ModelUpdate | None
    skipped: str = ""


class LearnerWorker:
    def __init__(
        self,
        settings: Settings,
        samples_limit: int = 2000,
        min_samples: int = 300,
        max_wait_s: float = 60.0,
        cooldown_s: float = 5.0,
        on_decision: Callable[[LearnerDecision], None] | None = None,
    ) -> None:
        self.settings = settings
        self.keys = RedisKeys(settings.key_prefix)
        self.samples_limit = samples_limit
        self.min_samples = min_samples
        self.max_wait_s = max_wait_s
        self._tasks: dict[str, asyncio.Task] = {}
        self.cooldown_s = cooldown_s
        self.on_decision = on_decision
        self.decisions: list[LearnerDecision] = []
        self._last_attempt: dict[str, float] = {}
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        topics = self.settings.topics
        redis = aioredis.Redis.from_url(self.settings.redis_url)
        registry = ModelRegistry(redis, self.keys)
        consumer = AIOKafkaConsumer(
            topics.alarms,
            bootstrap_servers=self.settings.bootstrap_list,
            group_id=f"{self.settings.app_id}-learner",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap_list, acks="all")
        await producer.start()
        await consumer.start()
        try:
            self.ready.set()
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=100)
                for records in batches.values():
                    for record in records:
                        await self._handle(record.value, registry, redis, producer)
                if batches:
                    await consumer.commit()
        finally:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            await consumer.stop()
            await producer.stop()
            await redis.aclose()

    async def _handle(self, raw: bytes, registry: ModelRegistry, redis, producer) -> None:
        try:
            alarm = decode_alarm(raw)
        except InvalidAlarm as exc:
            log.warning("ignoring a message on %s: %s", self.settings.topics.alarms, exc)
            return
        running = self._tasks.get(alarm.model_id)
        if running is not None and not running.done():
            self._decide(LearnerDecision(alarm, None, None, skipped="retrain already in progress"))
            return
        last = self._last_attempt.get(alarm.model_id)
        if last is not None and time.monotonic() - last < self.cooldown_s:
            self._decide(LearnerDecision(alarm, None, None, skipped="cooldown"))
            return
        self._tasks[alarm.model_id] = asyncio.create_task(
            self._retrain(alarm, registry, redis, producer)
        )

    async def _retrain(self, alarm: Alarm, registry: ModelRegistry, redis, producer) -> None:
        try:
            await self._retrain_once(alarm, registry, redis, producer)
        except Exception:
            log.exception("retrain for %s failed", alarm.dedup_key)
        finally:
            self._last_attempt[alarm.model_id] = time.monotonic()

    async def _retrain_once(self, alarm: Alarm, registry: ModelRegistry, redis, producer) -> None:
        champion = await registry.champion(alarm.model_id)
        if champion is None:
            self._decide(LearnerDecision(alarm, None, None, skipped="no champion registered"))
            return
        log.info(
            "alarm %s: collecting %d labelled samples from after the alarm",
            alarm.dedup_key,
            self.min_samples,
        )
        deadline = time.monotonic() + self.max_wait_s
        while True:
            samples = await recent_samples(
                redis, self.keys, alarm.model_id, self.samples_limit, since=alarm.event_time
            )
            if len(samples) >= self.min_samples or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.5)
        challenger, verdict = await asyncio.to_thread(
            champion_vs_challenger, champion.model, samples
        )
        update = None
        if verdict.promote and challenger is not None:
            version = f"v{champion.sequence + 1}"
            update = ModelUpdate.for_model(
                alarm.model_id,
                version,
                challenger,
                parent_version=champion.version,
                reason=alarm.dedup_key,
                evaluation=verdict.to_dict(),
            )
            await registry.set_champion(alarm.model_id, version, challenger, champion.sequence + 1)
            await producer.send_and_wait(
                self.settings.topics.model_updates, update.to_json(), key=alarm.model_id.encode()
            )
        self._decide(LearnerDecision(alarm, verdict, update))

    def _decide(self, decision: LearnerDecision) -> None:
        self.decisions.append(decision)
        alarm = decision.alarm
        if decision.skipped:
            log.info("alarm %s: skipped (%s)", alarm.dedup_key, decision.skipped)
        elif decision.verdict is not None:
            log.info("alarm %s: %s", alarm.dedup_key, decision.verdict.reason)
        if self.on_decision is not None:
            self.on_decision(decision)
