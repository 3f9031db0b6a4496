"""``driftline demo``: the whole loop on simulated traffic, narrated for a first-time reader.

It starts the Faust monitoring worker as a subprocess (log under ``$DRIFTLINE_CACHE/run``),
runs the learner and a model server (a :class:`~learners.handle.ModelHandle`) in this process,
streams inference events and late labels to Kafka, injects a drift halfway, and prints live
metrics (read back from Redis), the alarms (read from the alarms topic), the learner's decision
and the hot swap, then a summary.  Exit status 0 means the loop closed: alarm, promotion, swap,
and better accuracy after the swap than before it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter, deque
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from learners.updates import ModelUpdate
from redis import asyncio as aioredis

from contracts.alarms import decode_alarm
from contracts.events import InferenceEvent, LabelEvent
from contracts.redis_keys import RedisKeys
from contracts.settings import Settings
from driftline.simulation import DriftingScenario
from learners.handle import ModelHandle
from learners.registry import ModelRegistry
from learners.worker import LearnerDecision, LearnerWorker
from streams.producer import EventProducer
from streams.topics import ensure_topics

LABEL_DELAY_S = 1.0  # ground truth arrives a second after the prediction


def say(text: str = "") -> None:
    print(text, flush=True)


def _fmt(value: bytes | None, spec: str = ".3f") -> str:
    if value in (None, b""):
        return "  -  "
    return format(float(value), spec)


class Narrator:
    """Collects what happened, prints it as it happens."""

    def __init__(self, model_id: str, t0: float) -> None:
        self.model_id, self.t0 = model_id, t0
        self.alarms: Counter[str] = Counter()
        self.decisions: list[LearnerDecision] = []
        self.swaps: list[ModelUpdate] = []

    def stamp(self) -> str:
        return f"[{time.monotonic() - self.t0:6.1f}s]"

    def alarm(self, raw: bytes) -> None:
        alarm = decode_alarm(raw)
        if alarm.model_id != self.model_id:
            return
        self.alarms[alarm.dedup_key] += 1
        say(
            f"{self.stamp()} !! ALARM {alarm.dedup_key}  severity={alarm.severity}  "
            f"statistic={alarm.statistic:.3f} > threshold={alarm.threshold:.3f}  (value #{alarm.index})"
        )

    def decision(self, decision: LearnerDecision) -> None:
        if decision.alarm.model_id != self.model_id:
            return
        self.decisions.append(decision)
        if decision.skipped:
            return
        verdict = decision.verdict
        outcome = f"published {decision.update.version}" if decision.update else "no update"
        say(
            f"{self.stamp()} .. LEARNER challenger acc {verdict.challenger_accuracy:.3f} vs champion "
            f"{verdict.champion_accuracy:.3f} on {verdict.n_holdout} held-out samples "
            f"(trained on {verdict.n_train}) -> {outcome}"
        )

    def swap(self, update: ModelUpdate) -> None:
        self.swaps.append(update)
        say(
            f"{self.stamp()} << HOT SWAP model server now serves {update.version} "
            f"({update.digest[:19]}...), no request dropped"
        )


def _start_worker(settings: Settings, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, **settings.to_env()}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "driftline.cli", "worker", "--loglevel", "info"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


async def _wait_for_log(path: Path, needle: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"the monitoring worker exited (status {proc.returncode}); see {path}"
            )
        if path.exists() and needle in path.read_text(errors="replace"):
            return
        await asyncio.sleep(0.25)
    raise RuntimeError(f"the monitoring worker did not become ready in {timeout:.0f}s; see {path}")


async def _follow_alarms(
    settings: Settings, narrator: Narrator, stop: asyncio.Event, ready: asyncio.Event
) -> None:
    consumer = AIOKafkaConsumer(
        settings.topics.alarms,
        bootstrap_servers=settings.bootstrap_list,
        auto_offset_reset="latest",
    )
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        for tp in consumer.assignment():
            await consumer.position(tp)
        ready.set()
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    narrator.alarm(record.value)
    finally:
        await consumer.stop()


async def run_demo(events: int = 12_000, rate: float = 500.0, seed: int = 7) -> int:
    settings = Settings.from_env(app_id="driftline-demo")
    keys = RedisKeys(settings.key_prefix)
    run_id = time.strftime("%H%M%S")
    model_id = f"demo-{run_id}"
    drift_at = events // 2
    run_dir = Path(os.environ.get("DRIFTLINE_CACHE", Path.home() / ".cache" / "driftline")) / "run"
    worker_log = run_dir / f"demo-worker-{run_id}.log"

    say("driftline demo: a model in production, its traffic, a drift, and the loop that fixes it")
    say(f"  Kafka {settings.kafka_bootstrap}   Redis {settings.redis_url}   model id {model_id}")
    say(
        f"  {events} predictions at ~{rate:.0f}/s; labels arrive {LABEL_DELAY_S:.0f}s after each prediction;"
    )
    say(
        f"  at prediction #{drift_at} the world changes (the label starts to depend on x4, and x3 shifts)."
    )
    say()

    await ensure_topics(settings)
    scenario = DriftingScenario(seed=seed, drift_at=drift_at)
    champion = scenario.train_champion()
    redis = aioredis.Redis.from_url(settings.redis_url)
    await ModelRegistry(redis, keys).set_champion(model_id, "v1", champion, 1)
    say(
        f"model v1 trained at start-up on the first regime and registered ({champion.digest()[:19]}...)"
    )

    t0 = time.monotonic()
    narrator = Narrator(model_id, t0)
    stop = asyncio.Event()
    worker = _start_worker(settings, worker_log)
    say(f"monitoring worker started (pid {worker.pid}, log {worker_log})")
    tasks: list[asyncio.Task] = []
    try:
        await _wait_for_log(worker_log, "driftline worker ready", worker, timeout=90)
        say(
            f"{narrator.stamp()} monitoring worker is consuming {settings.topics.inferences} and {settings.topics.labels}"
        )
        handle = ModelHandle(model_id, champion, "v1")
        learner = LearnerWorker(settings, on_decision=narrator.decision)
        alarms_ready = asyncio.Event()
        tasks = [
            asyncio.create_task(
                handle.follow(
                    settings.bootstrap_list, settings.topics.model_updates, stop, narrator.swap
                )
            ),
            asyncio.create_task(learner.run(stop)),
            asyncio.create_task(_follow_alarms(settings, narrator, stop, alarms_ready)),
        ]
        await asyncio.wait_for(
            asyncio.gather(handle.ready.wait(), learner.ready.wait(), alarms_ready.wait()), 60
        )
        say(f"{narrator.stamp()} learner and model server are listening; sending traffic")
        say()
        outcomes = await _stream_traffic(
            settings, scenario, handle, narrator, redis, keys, model_id, events, rate
        )
        await _wait_processed(redis, keys, model_id, events, narrator)
        say()
        return _summary(
            narrator, outcomes, drift_at, await redis.hgetall(keys.metrics(model_id, "1m"))
        )
    except RuntimeError as exc:
        say(f"demo failed: {exc}")
        return 1
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        await redis.aclose()


async def _stream_traffic(
    settings, scenario, handle, narrator, redis, keys, model_id, events, rate
):
    """Send predictions and (late) labels; return (phase, correct) per prediction."""
    outcomes: list[tuple[str, bool]] = []
    pending_labels: deque[tuple[float, LabelEvent]] = deque()
    next_status = time.monotonic() + 1.0
    async with EventProducer(settings) as producer:
        start = time.monotonic()
        for i in range(events):
            if i == scenario.drift_at:
                say(f"{narrator.stamp()} >> DRIFT INJECTED at prediction #{i}")
            features, truth = scenario.sample(i)
            version, proba = handle.predict(features)
            prediction = int(proba >= 0.5)
            now = time.time()
            await producer.send_inference(
                InferenceEvent(
                    model_id,
                    version,
                    f"{model_id}-{i}",
                    now,
                    features,
                    prediction,
                    score=proba,
                    latency_ms=scenario.latency_ms(i),
                )
            )
            pending_labels.append(
                (
                    now + LABEL_DELAY_S,
                    LabelEvent(model_id, f"{model_id}-{i}", truth, now + LABEL_DELAY_S),
                )
            )
            phase = (
                "before drift"
                if i < scenario.drift_at
                else ("drift, v1" if version == "v1" else f"drift, {version}")
            )
            outcomes.append((phase, prediction == truth))
            while pending_labels and pending_labels[0][0] <= now:
                await producer.send_label(pending_labels.popleft()[1])
            if time.monotonic() >= next_status:
                next_status += 1.0
                await _status(narrator, redis, keys, model_id, i + 1, handle.version)
            delay = start + (i + 1) / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        while pending_labels:  # the last labels, on their schedule
            due, label = pending_labels.popleft()
            await asyncio.sleep(max(0.0, due - time.time()))
            await producer.send_label(label)
    return outcomes


async def _status(narrator, redis, keys, model_id, sent, version) -> None:
    m = await redis.hgetall(keys.metrics(model_id, "1m"))
    say(
        f"{narrator.stamp()} sent {sent:6d}  serving {version}  | last 1m: events {int(float(m.get(b'events', 0) or 0)):6d}"
        f"  accuracy {_fmt(m.get(b'accuracy'))}  f1 {_fmt(m.get(b'f1'))}"
        f"  latency p50/p99 {_fmt(m.get(b'latency_p50_ms'), '.1f')}/{_fmt(m.get(b'latency_p99_ms'), '.1f')} ms"
        f"  alarms {sum(narrator.alarms.values())}"
    )


async def _wait_processed(redis, keys, model_id, events, narrator, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = await redis.hgetall(keys.model_counters(model_id))
        if int(counts.get(b"inferences", 0)) >= events and int(counts.get(b"labels", 0)) >= events:
            say(
                f"{narrator.stamp()} worker has processed all {events} predictions and {events} labels"
            )
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the worker had not processed all events after {timeout:.0f}s")


def _summary(narrator: Narrator, outcomes, drift_at: int, metrics_1m: dict) -> int:
    by_phase: dict[str, list[bool]] = {}
    for phase, correct in outcomes:
        by_phase.setdefault(phase, []).append(correct)
    say("summary")
    say("  accuracy of served predictions, by phase (ground truth from the simulator):")
    for phase, rows in by_phase.items():
        say(f"    {phase:14s} {sum(rows) / len(rows):.3f}  over {len(rows)} predictions")
    say(
        f"  alarms: {sum(narrator.alarms.values())} ({', '.join(f'{k} x{n}' for k, n in narrator.alarms.items()) or 'none'})"
    )
    promoted = [d for d in narrator.decisions if d.update is not None]
    say(f"  learner: {len(narrator.decisions)} decisions, {len(promoted)} promotion(s)")
    say(f"  model versions served: {' -> '.join(['v1', *[u.version for u in narrator.swaps]])}")
    say(
        f"  Redis 1m metrics now: accuracy {_fmt(metrics_1m.get(b'accuracy'))}, events {metrics_1m.get(b'events', b'-').decode()}"
    )
    drift_v1 = by_phase.get("drift, v1", [])
    after = [
        c
        for phase, rows in by_phase.items()
        if phase.startswith("drift, v") and phase != "drift, v1"
        for c in rows
    ]
    problems = []
    if not narrator.alarms:
        problems.append("no alarm was raised")
    if not narrator.swaps:
        problems.append("no model update was swapped in")
    if drift_v1 and after and sum(after) / len(after) <= sum(drift_v1) / len(drift_v1):
        problems.append("accuracy did not improve after the swap")
    if problems:
        say("the loop did NOT close: " + "; ".join(problems))
        return 1
    say(
        "the loop closed: drift detected, challenger promoted, model hot-swapped, accuracy recovered."
    )
    return 0
