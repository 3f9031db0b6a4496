"""One model update from trigger to decision: collect, propose, gate, shadow, promote, bake.

:class:`UpdateJob` is what the learner worker runs per triggering alarm (or schedule tick), one at
a time per model.  Every blocking step (Redis, the blob store, training, scoring) runs in a worker
thread; the job itself only awaits, so the worker's event loop keeps consuming.

1. **collect**: wait until ``min_labelled`` labelled rows from the new regime exist
   (:func:`learners.samples.after`); give up when the stream's event time passes the alarm's by
   ``deadline_event_s``.
2. **propose**: the policy's strategy turns the champion and the rows (older 70%; the newest 30%
   are the gate's holdout) plus half the reference sample (replay) into a candidate.  The rows
   are those of the new regime plus, if the policy says so, the newest ``pre_trigger_rows`` from
   before the trigger (useful where the alarm fires well after the change began).
3. **gate**: :func:`learners.gate.evaluate` against the champion on the recent holdout and the
   other half of the reference sample.  A refusal is recorded in the registry with its checks.
4. **shadow** (``shadow_samples`` > 0): the candidate is published for handles to score beside the
   champion; the job compares both on the next ``shadow_samples`` live labelled rows.
5. **promote**: registered, then moved to champion in one atomic step that fails if the champion
   moved meanwhile; the update message (digest + blob URI) goes to ``<prefix>.model-updates``.
6. **bake**: the next ``bake_samples`` labelled rows served by the new champion are scored for
   it and for the previous champion (:mod:`learners.bake`); if it is worse beyond the policy, the
   previous champion comes back and a ``rollout`` alarm says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from contracts.alarms import Alarm
from contracts.updates import ModelUpdate
from learners.adapters.base import ModelAdapter
from learners.bake import bake_verdict
from learners.data import Dataset
from learners.gate import evaluate
from learners.policy import UpdatePolicy
from learners.registry import ModelRegistry, ModelVersion, RegistryConflict
from learners.samples import Labelled, after, before_trigger, read_labelled
from learners.scoring import score
from learners.strategies.base import (
    Candidate,
    StrategyNotApplicable,
    UpdateData,
    strategy_from_spec,
)

log = logging.getLogger(__name__)

HOLDOUT_FRACTION = 0.3


@dataclass(frozen=True)
class Trigger:
    model_id: str
    reason: str  # the alarm's dedup key, or "schedule"
    since: float  # event time: labelled rows at or after it are the new regime
    strategy: dict[str, Any]
    alarm: Alarm | None = None
    #: a retry: wait for ``min_labelled`` rows after this time (newer than those the refused
    #: update used), then train on every row from ``since`` on (at most ``max_rows``)
    waits_after: float | None = None


@dataclass
class Decision:
    model_id: str
    trigger: str
    outcome: str  # promoted | rejected | rolled_back | skipped | gave_up | conflict | failed
    detail: str
    strategy: str = ""
    version: str = ""  # the version promoted (or rolled back from)
    digest: str = ""
    verdict: dict[str, Any] | None = None
    shadow: dict[str, Any] | None = None
    bake: dict[str, Any] | None = None
    seconds_to_serving: float | None = None
    trigger_time: float | None = None  # event time of the trigger (the alarm's)
    data_until: float | None = None  # event time of the newest labelled row it read
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class UpdateJob:
    def __init__(
        self,
        trigger: Trigger,
        policy: UpdatePolicy,
        registry: ModelRegistry,
        publish_update: Callable[[ModelUpdate], Awaitable[None]],
        publish_alarm: Callable[[Alarm], Awaitable[None]],
        stop: asyncio.Event,
        poll_s: float = 0.5,
    ) -> None:
        self.trigger, self.policy, self.registry = trigger, policy, registry
        self.publish_update, self.publish_alarm = publish_update, publish_alarm
        self.stop, self.poll_s = stop, poll_s
        self.started = time.monotonic()
        self.collecting = True  # still waiting for its rows (nothing trained or moved yet)

    def _say(self, text: str) -> None:
        log.info("%s [%s]: %s", self.trigger.model_id, self.trigger.reason, text)

    def _decision(self, outcome: str, detail: str, **fields: Any) -> Decision:
        since = self.trigger.since
        return Decision(
            self.trigger.model_id,
            self.trigger.reason,
            outcome,
            detail,
            trigger_time=since if since != float("-inf") else None,
            **fields,
        )

    async def run(self) -> Decision:
        try:
            return await self._run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one model's failure must not stop the learner
            log.exception("update of %s failed", self.trigger.model_id)
            return self._decision("failed", f"{type(exc).__name__}: {exc}")

    async def _run(self) -> Decision:
        model_id, policy = self.trigger.model_id, self.policy
        champion_version = await asyncio.to_thread(self.registry.champion, model_id)
        if champion_version is None:
            return self._decision(
                "skipped",
                f"no champion registered for {model_id!r}: register one with "
                f"`driftline models register {model_id} <model file> --adapter <kind>`",
            )
        champion = await asyncio.to_thread(self.registry.load, champion_version)

        waits_after = self.trigger.waits_after
        start = self.trigger.since if waits_after is None else waits_after
        collected = await self._collect(champion, start, policy.min_labelled)
        if isinstance(collected, Decision):
            return collected
        self.collecting = False
        everything, fresh = collected
        if waits_after is not None:  # a retry learns from the whole new regime so far
            fresh = after(everything, self.trigger.since)
        rows = fresh.data
        if policy.pre_trigger_rows and self.trigger.since != float("-inf"):
            before = before_trigger(everything, self.trigger.since)
            rows = before.take(slice(max(0, len(before) - policy.pre_trigger_rows), None)).concat(
                rows
            )
        rows = rows.take(slice(max(0, len(rows) - policy.max_rows), None))
        train_rows, holdout = rows.split(HOLDOUT_FRACTION)
        reference = await asyncio.to_thread(self.registry.reference, model_id)
        replay, reference_holdout = reference.halves() if reference is not None else (None, None)

        candidate = await self._propose(champion, train_rows, replay)
        verdict = await asyncio.to_thread(
            evaluate, champion, candidate, holdout, reference_holdout, policy.gate
        )
        self._say(verdict.reason)
        candidate_digest = candidate.model.digest()
        if not verdict.promote:
            await asyncio.to_thread(
                self.registry.record_rejection,
                model_id,
                {
                    "trigger": self.trigger.reason,
                    "strategy": candidate.strategy,
                    "candidate_digest": candidate_digest,
                    "champion": champion_version.version,
                    "reason": verdict.reason,
                    "verdict": verdict.to_dict(),
                },
            )
            return self._decision(
                "rejected",
                verdict.reason,
                strategy=candidate.strategy,
                verdict=verdict.to_dict(),
                data_until=everything.newest_time,
            )

        version = await asyncio.to_thread(
            self.registry.register,
            model_id,
            candidate.model,
            parent=champion_version.digest,
            strategy=candidate.strategy,
            data_window={
                "trigger": self.trigger.reason,
                "since": self.trigger.since,
                "rows": len(rows),
                "first_event_time": float(rows.event_times[0]),
                "last_event_time": float(rows.event_times[-1]),
                "reference_rows": 0 if reference is None else len(reference),
            },
            metrics={"gate": {k: v for k, v in verdict.to_dict().items() if k != "checks"}},
            probes={k: verdict.checks[k] for k in ("privacy", "robustness") if k in verdict.checks},
        )
        shadow = None
        if policy.shadow_samples:
            shadow = await self._shadow(champion, candidate.model, version)
            if isinstance(shadow, Decision):
                return shadow
        try:
            move = await asyncio.to_thread(
                self.registry.promote,
                model_id,
                version.digest,
                expected_champion=champion_version.digest,
                reason=self.trigger.reason,
            )
        except RegistryConflict as exc:
            return self._decision(
                "conflict",
                f"not promoted: {exc}",
                strategy=candidate.strategy,
                version=version.version,
            )
        await self.publish_update(
            version.to_update(
                move.generation,
                parent_version=champion_version.version,
                reason=self.trigger.reason,
                evaluation={"gate": verdict.reason, "strategy": candidate.strategy},
            )
        )
        seconds = time.monotonic() - self.started
        self._say(f"promoted {version.version} (generation {move.generation}) after {seconds:.1f}s")
        fields = {
            "strategy": candidate.strategy,
            "version": version.version,
            "digest": version.digest,
            "verdict": verdict.to_dict(),
            "shadow": shadow,
            "seconds_to_serving": seconds,
        }
        if policy.bake_samples:
            bake = await self._bake(champion, champion_version, candidate.model, version)
            if bake is not None:
                fields["bake"] = bake.to_dict()
                if bake.rollback:
                    return self._decision("rolled_back", bake.reason, **fields)
        return self._decision("promoted", verdict.reason, **fields)

    # -- steps --------------------------------------------------------------------------------
    async def _read(self, model: ModelAdapter) -> Labelled:
        return await asyncio.to_thread(
            read_labelled,
            self.registry.client,
            self.registry.keys,
            self.trigger.model_id,
            model.feature_names,
            model.task == "regression",
            max(self.policy.max_rows * 2, 1000),
        )

    async def _collect(
        self, model: ModelAdapter, since: float, needed: int, served_by: str = ""
    ) -> tuple[Labelled, Labelled] | Decision:
        """Wait for ``needed`` labelled rows at/after ``since`` (optionally served by a version).
        Returns (every row read, the rows that count)."""
        deadline = None if since == float("-inf") else since + self.policy.deadline_event_s
        announced = -1
        while True:
            everything = await self._read(model)
            if deadline is None and len(everything.data):
                # no trigger time (a schedule, a bake): the deadline runs from the first row seen
                deadline = everything.newest_time + self.policy.deadline_event_s
            labelled = after(everything, since)
            if served_by:
                labelled = labelled.served_by(served_by)
            n = len(labelled.data)
            if n >= needed:
                return everything, labelled
            clock = everything.newest_time
            if deadline is not None and clock > deadline:
                return self._decision(
                    "gave_up",
                    f"only {n} of {needed} labelled rows by event time {clock:.0f} "
                    f"({self.policy.deadline_event_s:g}s of event time after the trigger)",
                )
            if n // 50 != announced:
                announced = n // 50
                self._say(f"{n}/{needed} labelled rows collected")
            if self.stop.is_set():
                raise asyncio.CancelledError
            await asyncio.sleep(self.poll_s)

    async def _propose(
        self, champion: ModelAdapter, train_rows: Dataset, replay: Dataset | None
    ) -> Candidate:
        data = UpdateData(train_rows, reference=replay, progress=self._say)
        spec = self.trigger.strategy
        try:
            strategy = strategy_from_spec(spec)
            self._say(f"proposing with {strategy!r} on {len(train_rows)} rows")
            return await asyncio.to_thread(strategy.propose, champion, data)
        except StrategyNotApplicable as exc:
            fallback = strategy_from_spec(self.policy.fallback)
            self._say(f"{exc}; falling back to {fallback!r}")
            return await asyncio.to_thread(fallback.propose, champion, data)

    async def _shadow(
        self, champion: ModelAdapter, candidate: ModelAdapter, version: ModelVersion
    ) -> dict[str, Any] | Decision:
        model_id = self.trigger.model_id
        await asyncio.to_thread(self.registry.set_candidate, model_id, version.digest)
        await self.publish_update(version.to_update(0, "shadow", reason=self.trigger.reason))
        start = (await self._read(champion)).newest_time
        self._say(f"{version.version} in shadow for {self.policy.shadow_samples} live rows")
        collected = await self._collect(champion, start + 1e-9, self.policy.shadow_samples)
        if isinstance(collected, Decision):
            return collected
        rows = collected[1].data
        agreement = None
        if candidate.task != "regression":
            same = champion.predict(champion.prepare(rows)) == candidate.predict(
                candidate.prepare(rows)
            )
            agreement = float(same.mean())
        report = {
            "rows": len(rows),
            "agreement": agreement,
            "champion": score(champion, rows),
            "candidate": score(candidate, rows),
        }
        tolerance = self.policy.gate.reference_tolerance
        if report["candidate"] < report["champion"] - tolerance:
            reason = (
                f"shadow: candidate {report['candidate']:.3f} vs champion {report['champion']:.3f} "
                f"on {len(rows)} live rows (may lose {tolerance:.3f})"
            )
            await asyncio.to_thread(
                self.registry.record_rejection,
                model_id,
                {
                    "trigger": self.trigger.reason,
                    "candidate_digest": version.digest,
                    "reason": reason,
                    "shadow": report,
                },
            )
            return self._decision("rejected", reason, version=version.version, shadow=report)
        return report

    async def _bake(
        self,
        previous: ModelAdapter,
        previous_version: ModelVersion,
        new: ModelAdapter,
        version: ModelVersion,
    ):
        model_id = self.trigger.model_id
        needed = self.policy.bake_samples
        self._say(f"baking {version.version}: watching {needed} labelled rows it serves")
        collected = await self._collect(new, float("-inf"), needed, served_by=version.version)
        if isinstance(collected, Decision):
            self._say(f"bake window ended without a verdict: {collected.detail}")
            return None
        rows = collected[1]
        verdict = await asyncio.to_thread(
            bake_verdict, new, previous, rows.data, self.policy.bake_max_error_increase
        )
        self._say(verdict.reason)
        if not verdict.rollback:
            return verdict
        try:
            move = await asyncio.to_thread(
                self.registry.rollback,
                model_id,
                reason=f"bake window: {verdict.reason}",
                expected_champion=version.digest,
            )
        except RegistryConflict as exc:
            self._say(f"not rolled back, the champion moved meanwhile: {exc}")
            return verdict
        await self.publish_update(
            previous_version.to_update(
                move.generation,
                "rollback",
                parent_version=version.version,
                reason=f"bake window: {verdict.reason}",
            )
        )
        await self.publish_alarm(
            Alarm(
                model_id=model_id,
                model_version=version.version,
                signal_kind="rollout",
                signal_name="bake_window",
                detector="bake",
                statistic=verdict.new_error,
                threshold=verdict.previous_error + verdict.max_increase,
                window={
                    "rows": verdict.rows,
                    "rolled_back_to": previous_version.version,
                    "reason": verdict.reason,
                },
                severity="critical",
                event_time=rows.newest_time,
                index=verdict.rows,
            )
        )
        return verdict
