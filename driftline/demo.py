"""``driftline demo``: the whole loop on simulated traffic, narrated for a first-time reader.

It trains a small torch classifier at start-up (nothing is downloaded), registers it as the
champion, starts the Faust monitoring worker as a subprocess (log under ``$DRIFTLINE_CACHE/run``),
runs the learner and a model server (a :class:`~learners.handle.ModelHandle`) in this process, and
plays three scenes (:mod:`driftline.simulation`):

1. **drift**: traffic moves where the champion extrapolates badly -> error alarm -> fine-tuning
   with the first layer frozen -> gate -> promotion -> hot swap -> accuracy recovers -> the bake
   window keeps the new champion;
2. **broken labels**: an upstream bug flips half the labels -> error alarm -> the candidate learnt
   from noise is refused by the gate (and the refusal recorded);
3. **bad rollout**: a second model whose policy switched the gate off gets a heavily pruned
   candidate -> the bake window sees it do worse live than its predecessor -> automatic rollback
   with a ``rollout`` alarm.

Exit status 0 means each scene ended as it should.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from contracts.alarms import decode_alarm, is_resolution
from contracts.settings import Settings
from contracts.updates import ModelUpdate
from driftline.demo_paging import LocalPaging
from driftline.processes import start_worker, stop_worker, wait_until_ready
from driftline.simulation import DriftingScenario
from driftline.traffic import Traffic
from learners.gate import GateConfig
from learners.handle import ModelHandle
from learners.job import Decision
from learners.policy import PolicySet, UpdatePolicy
from learners.registry import ModelRegistry
from learners.worker import LearnerWorker
from streams.producer import EventProducer
from streams.topics import ensure_topics

LABEL_DELAY_S = 1.0  # ground truth arrives a second after the prediction


def say(text: str = "") -> None:
    print(text, flush=True)


class Narrator:
    """Collects what happened, prints it as it happens."""

    def __init__(self, models: set[str], t0: float) -> None:
        self.models, self.t0 = models, t0
        self.alarms: Counter[str] = Counter()
        self.decisions: list[Decision] = []
        self.swaps: list[ModelUpdate] = []

    def stamp(self) -> str:
        return f"[{time.monotonic() - self.t0:6.1f}s]"

    def alarm(self, raw: bytes) -> None:
        if is_resolution(raw):
            data = json.loads(raw)["data"]
            if data["model"] in self.models:
                say(f"{self.stamp()} ok RESOLVED {data['dedup_key']}: {data['reason']}")
            return
        alarm = decode_alarm(raw)
        if alarm.model_id not in self.models:
            return
        self.alarms[alarm.dedup_key] += 1
        if self.alarms[alarm.dedup_key] > 1 and alarm.signal_kind != "rollout":
            return  # the first of each kind is news; repeats are counted in the summary
        say(
            f"{self.stamp()} !! ALARM {alarm.dedup_key} ({alarm.model_version}) "
            f"severity={alarm.severity} statistic={alarm.statistic:.3f} > {alarm.threshold:.3f}"
        )

    def decision(self, decision: Decision) -> None:
        if decision.model_id not in self.models:
            return
        self.decisions.append(decision)
        if decision.outcome == "skipped":
            say(f"{self.stamp()} .. LEARNER {decision.trigger}: skipped ({decision.detail})")
            return
        say(f"{self.stamp()} .. LEARNER {decision.model_id}: {decision.outcome.upper()}")
        if decision.verdict:
            for name, check in decision.verdict["checks"].items():
                mark = "ok " if check["passed"] else "NO "
                say(f"               {mark} {name:10s} {check['summary']}")
        if decision.bake:
            say(f"               bake window: {decision.bake['reason']}")
        if decision.outcome not in ("promoted", "rejected", "rolled_back"):
            say(f"               {decision.detail}")

    def swap(self, update: ModelUpdate) -> None:
        self.swaps.append(update)
        say(
            f"{self.stamp()} << HOT SWAP {update.model_id} now serves {update.version} "
            f"({update.action}, generation {update.generation}, {update.digest[7:19]})"
        )

    def outcomes(self, model_id: str) -> list[str]:
        return [
            d.outcome for d in self.decisions if d.model_id == model_id and d.outcome != "skipped"
        ]


async def _follow_alarms(settings, narrator, stop, ready) -> None:
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


class Scene:
    """Plays one scene's traffic at ``rate`` until ``done()`` or ``max_events``."""

    def __init__(self, traffic: Traffic, handle: ModelHandle, scenario, narrator, rate: float):
        self.traffic, self.handle, self.scenario = traffic, handle, scenario
        self.narrator, self.rate = narrator, rate
        self.correct: dict[str, list[bool]] = {}

    async def play(self, scene: str, max_events: int, done=lambda: False, min_events: int = 0):
        start, next_status = time.monotonic(), time.monotonic() + 2.0
        for i in range(max_events):
            features, truth = self.scenario.sample(scene)
            version, correct = await self.traffic.serve(
                self.handle, features, truth, self.scenario.latency_ms()
            )
            self.correct.setdefault(f"{scene}/{version}", []).append(correct)
            if time.monotonic() >= next_status:
                next_status += 2.0
                rows = self.correct[f"{scene}/{version}"][-500:]
                say(
                    f"{self.narrator.stamp()}    {self.handle.model_id}: {i + 1:5d} {scene} "
                    f"requests, serving {version}, its recent accuracy {sum(rows) / len(rows):.3f}"
                )
            if i >= min_events and done():
                return
            delay = start + (i + 1) / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    def accuracy(self, key: str) -> float | None:
        rows = self.correct.get(key)
        return sum(rows) / len(rows) if rows else None


async def run_demo(
    events: int = 12_000, rate: float = 500.0, seed: int = 7, keep_open: bool = False
) -> int:
    # alarms resolve after 5 s of quiet here (600 s by default), so the demo shows both ends
    # and the dashboard gets a point a second (5 s by default)
    settings = Settings.from_env(app_id="driftline-demo", resolve_after_s=5.0, series_every_s=1.0)
    run_id = time.strftime("%H%M%S")
    main_id, rollout_id = f"demo-{run_id}", f"demo-canary-{run_id}"
    run_dir = Path(os.environ.get("DRIFTLINE_CACHE", Path.home() / ".cache" / "driftline")) / "run"
    worker_log = run_dir / f"demo-worker-{run_id}.log"
    calm = max(2600, events // 4)

    say("driftline demo: a torch model in production, its traffic, and the loop that keeps it good")
    say(
        f"  Kafka {settings.kafka_bootstrap}   Redis {settings.redis_url}   models {main_id}, {rollout_id}"
    )
    say(f"  ~{rate:.0f} requests/s; each label arrives {LABEL_DELAY_S:.0f}s after its prediction")
    say()

    await ensure_topics(settings)
    registry = ModelRegistry.from_settings(settings)
    scenario = DriftingScenario(seed=seed)
    say("training the champion at start-up: a 4-32-16-2 torch MLP on the normal traffic ...")
    champion = scenario.train_champion()
    for model_id in (main_id, rollout_id):
        version = registry.register(model_id, champion, strategy="initial training")
        registry.promote(model_id, version.version, reason="demo start")
        registry.set_reference(model_id, scenario.dataset("normal", 2000))
    say(
        f"  registered as v1 of both models ({champion.digest()[7:19]}, "
        f"{champion.n_parameters()} parameters, blob in {settings.blob_store}); "
        f"accuracy on normal traffic {scenario.accuracy(champion, 'normal'):.3f}, "
        f"on the traffic to come {scenario.accuracy(champion, 'shifted'):.3f}"
    )
    policies = PolicySet(
        UpdatePolicy(triggers={}),
        {
            main_id: UpdatePolicy(
                triggers={
                    "error": {"name": "fine_tune", "freeze": ["body.0.*"], "replay_fraction": 0.5},
                },
                min_labelled=600,
                bake_samples=300,
                cooldown_s=5.0,
            ),
            rollout_id: UpdatePolicy(
                triggers={},
                min_labelled=300,
                periodic_retrain_s=3.0,
                periodic_strategy={"name": "prune", "amount": 0.97},
                bake_samples=300,
                cooldown_s=3600.0,
                gate=GateConfig.disabled(),
            ),
        },
    )
    say(
        "  policy: error alarms -> fine-tune with body.0 frozen, 50% replay; 600 labelled rows; bake 300"
    )
    say()

    t0 = time.monotonic()
    narrator = Narrator({main_id, rollout_id}, t0)
    stop = asyncio.Event()
    worker = start_worker(settings, worker_log)
    say(f"monitoring worker started (pid {worker.pid}, log {worker_log})")
    tasks: list[asyncio.Task] = []
    paging = LocalPaging(settings, say, {main_id, rollout_id}, narrator.stamp)
    try:
        await wait_until_ready(worker_log, worker)
        await paging.__aenter__()
        handle = ModelHandle(main_id, registry.blobs)
        canary = ModelHandle(rollout_id, registry.blobs)
        learner = LearnerWorker(
            settings, policies, registry, on_decision=narrator.decision, poll_s=0.25
        )
        alarms_ready = asyncio.Event()
        for h in (handle, canary):
            tasks.append(
                asyncio.create_task(
                    h.follow(
                        settings.bootstrap_list,
                        settings.topics.model_updates,
                        stop,
                        registry,
                        narrator.swap,
                    )
                )
            )
        tasks.append(asyncio.create_task(learner.run(stop)))
        tasks.append(asyncio.create_task(_follow_alarms(settings, narrator, stop, alarms_ready)))
        await asyncio.wait_for(
            asyncio.gather(
                handle.ready.wait(), canary.ready.wait(), learner.ready.wait(), alarms_ready.wait()
            ),
            60,
        )
        say(
            f"{narrator.stamp()} worker, learner and model servers are up (serving {handle.version})"
        )
        async with EventProducer(settings) as producer:
            traffic = Traffic(producer, main_id, LABEL_DELAY_S, run_id)
            scene = Scene(traffic, handle, scenario, narrator, rate)
            say()
            say(
                f"scene 1: normal traffic ({calm} requests: the detectors learn what normal looks like)"
            )
            await scene.play("normal", calm)
            say(f"{narrator.stamp()} >> traffic moves to a region the model never saw (x1 ~ 1.6)")
            await scene.play("shifted", events, done=lambda: bool(narrator.outcomes(main_id)))
            say()
            say("scene 2: an upstream bug flips half of the labels")
            await scene.play(
                "noisy_labels",
                events,
                done=lambda: len(narrator.outcomes(main_id)) >= 2,
                min_events=500,
            )
            await traffic.drain()

            say()
            say(
                f"scene 3: {rollout_id}, whose policy switched the gate off, gets a 97%-pruned candidate"
            )
            canary_traffic = Traffic(producer, rollout_id, LABEL_DELAY_S, run_id)
            canary_scene = Scene(canary_traffic, canary, scenario, narrator, rate)
            await canary_scene.play(
                "normal", events, done=lambda: bool(narrator.outcomes(rollout_id))
            )
            await canary_traffic.drain()
        await asyncio.sleep(1.0)
        say()
        status = _summary(narrator, scene, canary_scene, registry, main_id, rollout_id, paging)
        if keep_open:
            say(f"still running for you: dashboard {paging.dashboard_url}/ - Ctrl-C ends the demo")
            await _until_interrupted()
        return status
    except RuntimeError as exc:
        say(f"demo failed: {exc}")
        return 1
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await paging.__aexit__(None, None, None)
        stop_worker(worker)
        with contextlib.suppress(Exception):
            registry.close()


async def _until_interrupted() -> None:
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    say("stopping ...")


def _summary(narrator, scene, canary_scene, registry, main_id, rollout_id, paging) -> int:
    say("summary")
    say("  accuracy of served predictions (ground truth from the simulator):")
    for key, rows in scene.correct.items():
        say(f"    {main_id} {key:22s} {sum(rows) / len(rows):.3f} over {len(rows)} requests")
    for key, rows in canary_scene.correct.items():
        say(f"    {rollout_id} {key:16s} {sum(rows) / len(rows):.3f} over {len(rows)} requests")
    say(f"  alarms: {', '.join(f'{k} x{n}' for k, n in narrator.alarms.items()) or 'none'}")
    for model_id in (main_id, rollout_id):
        champion = registry.champion(model_id)
        say(
            f"  {model_id}: decisions {narrator.outcomes(model_id)}; champion now {champion.version}; "
            f"see `driftline models show {model_id}`"
        )
    pages = paging.pages
    say(
        "  pages: Alertmanager-style receiver "
        f"{pages['alertmanager.firing']} firing, {pages['alertmanager.resolved']} resolved; "
        f"PagerDuty-style receiver {pages['pagerduty.trigger']} trigger, "
        f"{pages['pagerduty.resolve']} resolve"
    )
    problems = []
    if not (pages["alertmanager.firing"] and pages["pagerduty.trigger"]):
        problems.append("no page reached the local receivers")
    if not (pages["alertmanager.resolved"] and pages["pagerduty.resolve"]):
        problems.append("no resolve reached the local receivers")
    first = narrator.outcomes(main_id)
    if not first or first[0] != "promoted":
        problems.append(f"scene 1 ended with {first[:1] or 'no decision'}, not a promotion")
    before, after = scene.accuracy("shifted/v1"), scene.accuracy("shifted/v2")
    if before is None or after is None or after <= before + 0.1:
        problems.append(f"accuracy on the shifted traffic did not recover ({before} -> {after})")
    if "rejected" not in first[1:]:
        problems.append(f"scene 2: the gate did not refuse the noisy-label candidate ({first[1:]})")
    if narrator.outcomes(rollout_id)[:1] != ["rolled_back"]:
        problems.append(f"scene 3 ended with {narrator.outcomes(rollout_id)}, not a rollback")
    if problems:
        say("the loop did NOT behave: " + "; ".join(problems))
        return 1
    say(
        "the loop closed: drift detected, fine-tuned model promoted and hot-swapped, accuracy "
        "recovered; noise refused by the gate; a bad rollout rolled back in its bake window."
    )
    return 0
