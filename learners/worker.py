"""The learner worker: alarms in, gated model updates out (aiokafka; never Faust).

For each alarm the model's :class:`~learners.policy.UpdatePolicy` decides what happens:

- alarm kinds with no strategy (latency, rules, security, rollouts, and by default feature
  drift) are acknowledged and recorded as ``skipped``;
- otherwise an :class:`~learners.job.UpdateJob` runs (collect, propose, gate, promote, bake),
  at most one per model at a time;
- an alarm that arrives while its model's update is in flight, or within ``cooldown_s`` after a
  promotion or rollback, is *deferred*: the newest such alarm per model runs when the model is
  free (older deferred ones are recorded as superseded).  Dropping it would lose the drift: after
  an alarm a detector takes the new regime as its baseline and may never fire again for it.

With ``retries_while_open``, an update refused by the gate is tried again once ``min_labelled``
labelled rows newer than those it used have come, on every row since its alarm (at most
``max_rows``: the new regime so far, more of it each time), while its alarm stays open: an alarm
holds its repeats until it resolves, so without a retry a refused update leaves a degraded model
alone until then.  The alarm's resolution, a newer alarm of the model, or a promotion ends the
retries; they live in memory (a restarted learner does not retry what it refused before).

With ``update_on_repeat`` (the default), the learner also follows an alarm it acted on while it
stays open: once the model is idle (no update in flight, no retry waiting, out of its cooldown),
it reads the alarm's entry among the model's open alarms in Redis (``<p>:{<model>}:alarms:open``,
written by the monitoring worker with each checkpoint), and when the entry shows a new repeat
(the detector re-learnt after the alarm and fired again: the signal moved *again*) it starts a
new update on the rows from that repeat on.  Repeats are not published on the alarms topic (a
pager would ring again for the same problem), so without this an open alarm whose update was
refused, or whose model got worse again, left the model alone until the alarm resolved, which
a model that stays bad never does (``bench/elec2.py --abrupt``).  A promotion, the alarm's
resolution or a newer alarm of the model ends the following.

With ``staleness_baseline_rows`` (off by default), the learner also has a trigger of its own
(:mod:`learners.staleness`): it reads each idle champion's labelled rows from Redis (at most once
a second) and starts an update when the champion's error rate has risen against its own first
rows; far more sensitive than an error alarm, which pages people and is calibrated to stay
quiet, because a false trigger costs only a gated training run.  It reads the rows after the
last update attempt's, so a refused update is not retried on the same evidence.

The alarm's offset is committed only when its job is decided, so a learner that crashes
mid-update redoes it after a restart.  Models whose policy sets ``periodic_retrain_s`` are also
updated on that schedule.  The last ``keep_decisions`` decisions stay in memory
(:attr:`decisions`) and in Redis (``<p>:{<model>}:decisions``, read by ``driftline models show``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from contracts.alarms import (
    CLOUDEVENT_HEADERS,
    Alarm,
    InvalidAlarm,
    decode_alarm,
    encode_alarm,
    is_resolution,
    resolved_key,
)
from contracts.settings import Settings
from contracts.updates import ModelUpdate
from learners import telemetry
from learners.job import Decision, Trigger, UpdateJob
from learners.offsets import OffsetTracker
from learners.policy import PolicySet
from learners.registry import ModelRegistry
from learners.samples import NewestRows
from learners.staleness import Staleness, assess_outcomes, outcome

log = logging.getLogger(__name__)

DECISIONS_KEPT = 200


@dataclass(frozen=True)
class _Pending:
    trigger: Trigger
    offset: tuple[str, int, int]  # (topic, partition, offset) of the alarm


class LearnerWorker:
    def __init__(
        self,
        settings: Settings,
        policies: PolicySet | None = None,
        registry: ModelRegistry | None = None,
        on_decision: Callable[[Decision], None] | None = None,
        poll_s: float = 0.5,
        keep_decisions: int = 1000,
    ) -> None:
        self.settings = settings
        self.policies = policies or PolicySet.from_file(settings.policy_file)
        self.registry = registry or ModelRegistry.from_settings(settings)
        self.on_decision = on_decision
        self.poll_s = poll_s
        self.decisions: deque[Decision] = deque(maxlen=keep_decisions)
        self.offsets = OffsetTracker()
        self._jobs: dict[str, asyncio.Task] = {}
        self._pending: dict[str, _Pending] = {}  # model -> newest deferred alarm
        self._retries: dict[str, tuple[Trigger, int]] = {}  # model -> next try of a refusal
        self._tries: dict[str, tuple[str, int]] = {}  # model -> (alarm key, retries made)
        # model -> (the trigger of its open alarm acted on, the repeats already acted on)
        self._followed: dict[str, tuple[Trigger, int]] = {}
        self._repeats_read = 0.0  # monotonic time Redis' open alarms were last read
        self._staleness_read = 0.0  # monotonic time labelled rows were last read for staleness
        # model -> label time after which its staleness CUSUM reads (the newest row of its
        # last update attempt); model -> (its champion, the champion's baseline, the baseline's
        # last label time): kept, as the champion's first rows leave the capped list of rows
        self._stale_after: dict[str, float] = {}
        self._baselines: dict[str, tuple[str, float, float]] = {}
        # each watched model's labelled rows as the check reads them, read incrementally
        self._outcomes = NewestRows(
            self.registry.client, self.registry.keys, settings.labelled_keep, outcome
        )
        self._running: dict[str, tuple[Trigger, UpdateJob]] = {}  # model -> its job in flight
        self._last_move: dict[str, float] = {}  # model -> monotonic time of promotion/rollback
        self._last_periodic: dict[str, float] = {}
        self._registered_cache: tuple[float, list[str]] | None = None  # (when, model ids)
        self._producer = None
        self.ready = asyncio.Event()

    # -- main loop ----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        consumer = AIOKafkaConsumer(
            self.settings.topics.alarms,
            bootstrap_servers=self.settings.bootstrap_list,
            group_id=f"{self.settings.app_id}-learner",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_list, acks="all"
        )
        await self._producer.start()
        await consumer.start()
        self._stop = stop
        try:
            self.ready.set()
            while not stop.is_set():
                batches = await consumer.getmany(
                    timeout_ms=int(self.poll_s * 1000), max_records=100
                )
                for tp, records in batches.items():
                    for record in records:
                        self._on_alarm(record.value, tp.topic, tp.partition, record.offset)
                self._start_deferred()
                self._start_retries()
                await self._follow_repeats()
                self._periodic()
                await self._check_staleness()
                commit = self.offsets.to_commit()
                if commit:
                    await consumer.commit({TopicPartition(t, p): o for (t, p), o in commit.items()})
        finally:
            for task in self._jobs.values():
                task.cancel()
            await asyncio.gather(*self._jobs.values(), return_exceptions=True)
            await consumer.stop()
            await self._producer.stop()
            await asyncio.to_thread(self.registry.close)

    def _on_alarm(self, raw: bytes | None, topic: str, partition: int, offset: int) -> None:
        if is_resolution(raw):  # an alarm's end: nothing to update, nothing more to retry
            self.offsets.seen(topic, partition, offset)
            self._end_retries(resolved_key(raw))
            return
        try:
            alarm = decode_alarm(raw or b"")
        except InvalidAlarm as exc:
            log.warning("ignoring message %s[%d]@%d: %s", topic, partition, offset, exc)
            self.offsets.seen(topic, partition, offset)
            return
        policy = self.policies.for_model(alarm.model_id)
        spec = policy.strategy_for(alarm.signal_kind, alarm.severity)
        if spec is None:
            self.offsets.seen(topic, partition, offset)
            skip = f"policy: {alarm.severity} {alarm.signal_kind} alarms trigger no update"
            self._decide(Decision(alarm.model_id, alarm.dedup_key, "skipped", skip))
            return
        self.offsets.start(topic, partition, offset)
        self._retries.pop(alarm.model_id, None)  # a newer alarm takes over
        trigger = Trigger(alarm.model_id, alarm.dedup_key, alarm.event_time, spec, alarm)
        self._followed[alarm.model_id] = (trigger, 0)  # it opened with no repeats
        pending = _Pending(trigger, (topic, partition, offset))
        if self._busy(alarm.model_id) or self._cooling(alarm.model_id, policy.cooldown_s):
            # Deferred, not dropped: after an alarm a detector relearns, so the same drift may
            # never alarm again.  The newest deferred alarm per model runs once the model is free;
            # an older one it replaces is acknowledged as covered by it.
            replaced = self._pending.get(alarm.model_id)
            if replaced is not None:
                self._release(replaced, f"superseded by the newer alarm {alarm.dedup_key}")
            self._pending[alarm.model_id] = pending
            reason = "an update is in flight" if self._busy(alarm.model_id) else "cooldown"
            log.info("%s: deferred (%s)", alarm.dedup_key, reason)
            return
        self._run_pending(pending)

    def _release(self, pending: _Pending, why: str) -> None:
        self.offsets.finish(*pending.offset)
        self._decide(Decision(pending.trigger.model_id, pending.trigger.reason, "skipped", why))

    def _run_pending(self, pending: _Pending) -> None:
        self._start(pending.trigger, on_done=lambda: self.offsets.finish(*pending.offset))

    def _start_deferred(self) -> None:
        for model_id, pending in list(self._pending.items()):
            policy = self.policies.for_model(model_id)
            if self._busy(model_id) or self._cooling(model_id, policy.cooldown_s):
                continue
            del self._pending[model_id]
            self._run_pending(pending)

    def _end_retries(self, key: str | None) -> None:
        """An alarm resolved: drop its waiting retry, or stop one still collecting rows."""
        for model_id, (followed, _) in list(self._followed.items()):
            if followed.alarm is not None and followed.alarm.dedup_key == key:
                del self._followed[model_id]
        for model_id, (retry, _) in list(self._retries.items()):
            if retry.alarm is not None and retry.alarm.dedup_key == key:
                del self._retries[model_id]
                self._decide(Decision(model_id, retry.reason, "skipped", "its alarm resolved"))
        for model_id, (trigger, job) in list(self._running.items()):
            retrying = trigger.alarm is not None and trigger.reason != trigger.alarm.dedup_key
            if retrying and trigger.alarm.dedup_key == key and job.collecting:
                self._jobs[model_id].cancel()
                del self._running[model_id]
                self._decide(Decision(model_id, trigger.reason, "skipped", "its alarm resolved"))

    def _start_retries(self) -> None:
        for model_id, (trigger, _) in list(self._retries.items()):
            policy = self.policies.for_model(model_id)
            if self._busy(model_id) or self._cooling(model_id, policy.cooldown_s):
                continue
            del self._retries[model_id]
            self._start(trigger, on_done=lambda: None)  # the alarm's offset is committed already

    def _schedule_retry(self, trigger: Trigger, decision: Decision) -> None:
        """After a refusal of an alarm's update, its next try (see the module docstring)."""
        model_id, alarm = trigger.model_id, trigger.alarm
        self._retries.pop(model_id, None)
        if alarm is None or decision.outcome != "rejected" or decision.data_until is None:
            return
        done = self._tries.get(model_id, (None, 0))
        tries = done[1] if done[0] == alarm.dedup_key else 0
        if tries >= self.policies.for_model(model_id).retries_while_open:
            return
        self._tries[model_id] = (alarm.dedup_key, tries + 1)
        reason = f"{alarm.dedup_key} (still open: retry {tries + 1})"
        retry = Trigger(
            model_id,
            reason,
            trigger.since,
            trigger.strategy,
            alarm,
            waits_after=decision.data_until,
        )
        self._retries[model_id] = (retry, tries + 1)
        log.info("%s: refused; tries again on newer rows while its alarm is open", reason)

    async def _follow_repeats(self) -> None:
        """A new repeat of a followed open alarm starts an update (see the module docstring).
        Redis is read at most once per ``4 * poll_s``, for idle models only."""
        idle = [
            model_id
            for model_id in self._followed
            if self.policies.for_model(model_id).update_on_repeat
            and not self._busy(model_id)
            and model_id not in self._pending
            and model_id not in self._retries
            and not self._cooling(model_id, self.policies.for_model(model_id).cooldown_s)
        ]
        now = time.monotonic()
        if not idle or now - self._repeats_read < 4 * self.poll_s:
            return
        self._repeats_read = now
        keys = [self._followed[m][0].alarm.dedup_key for m in idle]  # type: ignore[union-attr]
        try:
            entries = await asyncio.to_thread(self._open_entries, idle, keys)
        except Exception as exc:  # Redis away: try again on a later tick
            log.warning("could not read open alarms to follow repeats: %s", exc)
            return
        for model_id, entry in zip(idle, entries, strict=True):
            followed, acted_on = self._followed[model_id]
            if entry is None:
                # not written yet (the monitor writes open alarms with its next checkpoint), or
                # resolved: its resolution on the alarms topic ends the following
                continue
            repeats = int(entry.get("repeats", 0))
            if repeats <= acted_on:
                continue
            self._followed[model_id] = (followed, repeats)
            self._tries.pop(model_id, None)  # a new change: retries count afresh
            since = float(entry.get("last_raised", followed.since))
            reason = f"{followed.reason} (fired again while open: repeat {repeats})"
            log.info("%s: starts an update on the rows from the repeat on", reason)
            self._start(
                Trigger(model_id, reason, since, followed.strategy, followed.alarm),
                on_done=lambda: None,  # the alarm's offset is committed already
            )

    def _open_entries(self, model_ids: list[str], keys: list[str]) -> list[dict | None]:
        pipe = self.registry.client.pipeline(transaction=False)
        for model_id, key in zip(model_ids, keys, strict=True):
            pipe.hget(self.registry.keys.open_alarms(model_id), key)
        return [None if raw is None else json.loads(raw) for raw in pipe.execute()]

    def _periodic(self) -> None:
        now = time.monotonic()
        for model_id in [*list(self.policies.models), "*"]:
            policy = self.policies.models.get(model_id, self.policies.default)
            if policy.periodic_retrain_s <= 0:
                continue
            targets = self._registered() if model_id == "*" else [model_id]
            for target in targets:
                if model_id == "*" and target in self.policies.models:
                    continue
                last = self._last_periodic.setdefault(target, now)
                if now - last < policy.periodic_retrain_s or self._busy(target):
                    continue
                if self._cooling(target, policy.cooldown_s):
                    continue
                self._last_periodic[target] = now
                spec = policy.periodic_strategy
                spec = {"name": spec} if isinstance(spec, str) else dict(spec)
                self._start(Trigger(target, "schedule", float("-inf"), spec), on_done=lambda: None)

    async def _check_staleness(self) -> None:
        """The learner's own trigger (:mod:`learners.staleness`) for the idle models whose policy
        turns it on: an update (``UpdatePolicy.staleness_strategy``) when the champion's error
        rate has risen against its own first rows.  Redis is read at most once per
        ``max(1 s, 4 * poll_s)``: the rows pushed since the last read (:class:`NewestRows`; the
        check reads every row the worker keeps, 5,000 by default, each digested once)."""
        now = time.monotonic()
        if now - self._staleness_read < max(1.0, 4 * self.poll_s):
            return
        watched = []
        for model_id in self._registered():
            policy = self.policies.for_model(model_id)
            check, strategy = policy.staleness(), policy.staleness_strategy()
            if check is None or strategy is None or self._busy(model_id):
                continue
            if model_id in self._pending or model_id in self._retries:
                continue
            if not self._cooling(model_id, policy.cooldown_s):
                watched.append((model_id, check, strategy))
        if not watched:
            return
        self._staleness_read = now
        try:
            found = await asyncio.to_thread(self._assess_staleness, watched)
        except Exception as exc:  # Redis away: try again on a later tick
            log.warning("could not read labelled rows to check staleness: %s", exc)
            return
        for (model_id, check, strategy), (version, result) in zip(watched, found, strict=True):
            if result is None:
                continue
            self._baselines[model_id] = (version, result.baseline, result.baseline_until)
            if not result.fired:
                continue
            reason = (
                f"stale: {version}'s error rate {result.recent:.3f} over {result.rows} rows "
                f"against {result.baseline:.3f} on its first {check.baseline_rows}"
            )
            log.info("%s: %s; starts an update", model_id, reason)
            self._stale_after[model_id] = result.label_time
            self._start(Trigger(model_id, reason, result.label_time, strategy), lambda: None)

    def _assess_staleness(self, watched: list) -> list[tuple[str, Staleness | None]]:
        out: list[tuple[str, Staleness | None]] = []
        for model_id, check, _ in watched:
            champion = self.registry.champion(model_id)
            if champion is None:
                out.append(("", None))
                continue
            version = champion.version
            outcomes = self._outcomes.read(model_id)  # every row the worker keeps
            after = self._stale_after.get(model_id, -float("inf"))
            kept = self._baselines.get(model_id)
            known = kept[1:] if kept is not None and kept[0] == version else None
            out.append((version, assess_outcomes(check, outcomes, version, after, known)))
        return out

    def _registered(self) -> list[str]:
        cached, now = self._registered_cache, time.monotonic()
        if cached is None or now - cached[0] > 30:
            self._registered_cache = (now, self.registry.models())
        return self._registered_cache[1]

    # -- jobs ---------------------------------------------------------------------------------
    def _busy(self, model_id: str) -> bool:
        job = self._jobs.get(model_id)
        return job is not None and not job.done()

    def _cooling(self, model_id: str, cooldown_s: float) -> bool:
        moved = self._last_move.get(model_id)
        return moved is not None and time.monotonic() - moved < cooldown_s

    def _start(self, trigger: Trigger, on_done: Callable[[], None]) -> None:
        job = UpdateJob(
            trigger,
            self.policies.for_model(trigger.model_id),
            self.registry,
            self._publish_update,
            self._publish_alarm,
            self._stop,
            self.poll_s,
        )

        async def run() -> None:
            telemetry.JOBS_IN_FLIGHT.inc()
            try:
                decision = await job.run()
            finally:
                telemetry.JOBS_IN_FLIGHT.dec()
                self._running.pop(trigger.model_id, None)
            if decision.data_until is not None:  # staleness reads the rows after these
                self._stale_after[trigger.model_id] = decision.data_until
            if decision.outcome in ("promoted", "rolled_back"):
                self._last_move[trigger.model_id] = time.monotonic()
                self._followed.pop(trigger.model_id, None)  # the new champion has its own
            self._decide(decision)
            self._schedule_retry(trigger, decision)
            on_done()  # only now may the alarm's offset be committed

        self._running[trigger.model_id] = (trigger, job)
        self._jobs[trigger.model_id] = asyncio.create_task(run(), name=f"update-{trigger.model_id}")

    async def _publish_update(self, update: ModelUpdate) -> None:
        await self._producer.send_and_wait(
            self.settings.topics.model_updates, update.to_json(), key=update.model_id.encode()
        )

    async def _publish_alarm(self, alarm: Alarm) -> None:
        source = f"/driftline/learners/{self.settings.worker_name}"
        await self._producer.send_and_wait(
            self.settings.topics.alarms,
            encode_alarm(alarm, source),
            key=alarm.model_id.encode(),
            headers=list(CLOUDEVENT_HEADERS.items()),
        )

    def _decide(self, decision: Decision) -> None:
        self.decisions.append(decision)
        telemetry.DECISIONS.labels(decision.outcome).inc()
        log.info(
            "%s [%s]: %s: %s",
            decision.model_id,
            decision.trigger,
            decision.outcome,
            decision.detail,
        )
        key = self.registry.keys.registry(decision.model_id, "decisions")
        doc = json.dumps(decision.to_dict(), separators=(",", ":"), default=str)
        with contextlib.suppress(Exception):  # a record, not a reason to stop
            pipe = self.registry.client.pipeline()
            pipe.lpush(key, doc)
            pipe.ltrim(key, 0, DECISIONS_KEPT - 1)
            pipe.execute()
        if self.on_decision is not None:
            self.on_decision(decision)
