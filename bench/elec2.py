"""Elec2, a real drifting stream, through driftline's real loop, with baselines and a control.

    make stack && eval "$(deploy/stack.sh env)"
    python bench/elec2.py [--data ../shared/data/elec2.csv] [--seeds 10] [--out docs/elec2-benchmark.md]

A torch MLP is trained on the first four weeks (1,344 half-hours).  The remaining 43,968 rows
are then served in order, each prediction through a :class:`~learners.handle.ModelHandle`, to
the real Kafka broker; the monitoring worker (a subprocess) joins each label (sent one
half-hour later in event time), the learner fine-tunes on error alarms, the gate decides, and
the handle hot-swaps.  Prequential accuracy (each row predicted before its label is known) is
compared with:

- the **frozen** model (never updated);
- a plain **online river learner** (standard scaler + logistic regression, test-then-train on
  every row), and river's Hoeffding adaptive tree;
- the **no-change** classifier (predicts the previous label; Elec2's label is autocorrelated);
- driftline's **online mode** for incremental models: a river champion (scaler + logistic
  regression, trained on the same four weeks) served through a ``ModelHandle`` that learns each
  label where it serves, guarded by the published version (``learners/online_serving.py``),
  live through the same loop (alarms monitored, no gated updates) and in process;
- a **random-time control**: the same strategy and the same number of update attempts as the
  live run, at random times, over ``--seeds`` seeds.  The control and the alarm-driven schedule
  are also replayed offline with the same code (monitor, strategy, gate; no Kafka), so the
  comparison between them is like for like.

In-process studies (each prints a table): ``--sensitivity ARL`` (the monitor's error detector
tuned to fire more), ``--staleness ROWS,ALLOWANCE,THRESHOLD`` (the learner's own staleness
trigger, ``learners/staleness.py``), ``--abrupt ROWS`` (Elec2 with its label inverted at those
rows), each against the random-time control; ``--live-staleness ROWS,ALLOWANCE,THRESHOLD`` runs
the real loop with the staleness trigger as the only trigger, its replay, and the control.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from contracts.events import InferenceEvent, LabelEvent
from contracts.settings import Settings
from learners.data import Dataset
from learners.gate import GateConfig, evaluate
from learners.policy import PolicySet, UpdatePolicy
from learners.staleness import StalenessCheck
from learners.strategies.base import UpdateData, strategy_from_spec

FEATURES = ("period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer")
HALF_HOUR = 1800.0
T0 = 830_000_000.0  # May 1996, seconds since the epoch
TRAIN_ROWS = 48 * 7 * 4  # four weeks
STRATEGY = {"name": "fine_tune", "freeze": None, "replay_fraction": 0.0}
MIN_LABELLED, MAX_ROWS = 100, 1000
RETRIES = 3  # the policy's retries_while_open: a refused update tried again while its alarm is open
HOLDOUT = 0.3


def load(path: Path) -> Dataset:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    X = np.array([[float(r[name]) for name in FEATURES] for r in rows], dtype=np.float32)
    y = np.array([str(int(float(r["class"]))) for r in rows], dtype=object)
    return Dataset(X, y, FEATURES, T0 + HALF_HOUR * np.arange(len(rows), dtype=np.float64))


def train_champion(data: Dataset):
    from learners.adapters.torch_module import TorchAdapter
    from learners.torch_training import TrainConfig

    model = TorchAdapter.build(
        "learners.zoo:mlp",
        {"n_features": len(FEATURES), "n_outputs": 2, "hidden": [32, 16]},
        "binary",
        ["0", "1"],
        FEATURES,
    )
    model.train_config = TrainConfig(epochs=40, bf16="off")
    model.fit(data.take(slice(0, TRAIN_ROWS)))
    return model


def river_champion(data: Dataset):
    """river's scaler + logistic regression, one pass over the first four weeks."""
    from river import linear_model, preprocessing

    from learners.adapters.river_model import RiverAdapter

    model = RiverAdapter(
        preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        "binary",
        ["0", "1"],
        FEATURES,
    )
    model.fit(data.take(slice(0, TRAIN_ROWS)))
    return model


# -- baselines ----------------------------------------------------------------------------------
def no_change(data: Dataset) -> float:
    return float(np.mean(data.y[TRAIN_ROWS:] == data.y[TRAIN_ROWS - 1 : -1]))


def frozen(model, data: Dataset) -> float:
    served = data.take(slice(TRAIN_ROWS, len(data)))
    return float(np.mean(model.predict(served.X) == served.y))


def river_daily(data: Dataset) -> float:
    """The same river learner, but updated once a day (48 rows) through driftline's ``online``
    strategy, ungated: what batching alone costs against learning every row."""
    model = river_champion(data)
    online = strategy_from_spec({"name": "online", "replay_fraction": 0.0, "epochs": 1})
    correct, last = 0, TRAIN_ROWS
    for i in range(TRAIN_ROWS, len(data)):
        correct += model.predict(data.X[i : i + 1])[0] == data.y[i]
        if i + 1 - last >= 48:
            model = online.propose(model, UpdateData(data.take(slice(last, i + 1)))).model
            last = i + 1
    return correct / (len(data) - TRAIN_ROWS)


def river_online(data: Dataset, estimator) -> float:
    correct = 0
    for i in range(len(data)):
        x = dict(zip(FEATURES, map(float, data.X[i]), strict=True))
        if i >= TRAIN_ROWS:
            correct += int(bool(estimator.predict_one(x))) == int(data.y[i])
        estimator.learn_one(x, data.y[i] == "1")
    return correct / (len(data) - TRAIN_ROWS)


# -- the learner's job, replayed in process -------------------------------------------------------
def replay(
    champion,
    data: Dataset,
    schedule: set[int] | None = None,
    monitor_config=None,
    min_labelled: int = MIN_LABELLED,
    pre_trigger_rows: int = MAX_ROWS - MIN_LABELLED,
    staleness: StalenessCheck | None = None,
) -> tuple[float, int, int]:
    """Serve rows in order; on a trigger (the monitor's error alarm, or a row in ``schedule``)
    collect ``min_labelled`` rows, propose with STRATEGY on them and the ``pre_trigger_rows``
    before the trigger (at most MAX_ROWS), gate, swap.  As the learner does: a refused update
    of an alarm is tried again ``min_labelled`` rows later, on every row since the alarm, while
    the alarm stays open (at most RETRIES times); its resolution or a newer alarm ends that; once no update or retry waits,
    a repeat of the open alarm (its detector fired again) triggers a new update on the rows
    from the repeat on (``update_on_repeat``).
    ``monitor_config``: the monitor's (default: the worker's defaults).
    ``staleness``: trigger on the learner's own staleness check instead of the monitor's error
    alarms (as ``LearnerWorker`` does with ``staleness_baseline_rows``): the champion's error
    rate against its own first rows, read from the row after the last attempt's data on.
    Returns (prequential accuracy, promotions, attempts)."""
    from streams.monitor import ModelMonitor

    model, version, monitor = champion, 1, ModelMonitor("elec2", monitor_config)
    pending, promoted, attempts, correct = None, 0, 0, 0
    open_key, tries = None, 0  # the alarm whose refused update is being retried
    since, repeats_seen = 0, 0  # the trigger's row; the open alarm's repeats acted on
    own_errors: list[float] = []  # staleness: the champion's errors since it served, in order
    p0, stale_from = None, 0  # its baseline; where in ``own_errors`` the CUSUM starts reading
    for i in range(TRAIN_ROWS, len(data)):
        prediction = model.predict(data.X[i : i + 1])[0]
        correct += prediction == data.y[i]
        if staleness is not None:
            own_errors.append(0.0 if prediction == data.y[i] else 1.0)
            if p0 is None:
                p0 = staleness.baseline(np.array(own_errors))
                stale_from = len(own_errors)
            elif (
                schedule is None
                and pending is None
                and staleness.first_crossing(np.array(own_errors[stale_from:]), p0) is not None
            ):
                pending = since = i
        else:  # the monitor, for its error alarms
            t = float(data.event_times[i])
            features = dict(zip(FEATURES, map(float, data.X[i]), strict=True))
            event = InferenceEvent("elec2", f"v{version}", f"r{i}", t, features, prediction)
            alarms = monitor.observe_inference(event).alarms
            alarms += monitor.observe_label(
                LabelEvent("elec2", f"r{i}", data.y[i], t + HALF_HOUR)
            ).alarms
        if schedule is None and staleness is None:
            if open_key in {r.dedup_key for r in monitor.resolve_quiet()}:
                open_key = None
                if tries:  # a retry still collecting rows stops
                    pending = None
            errors = [a for a in alarms if a.signal_kind == "error"]
            entry = monitor.book.open_alarms.get(open_key) if open_key else None
            if errors and (pending is None or tries):  # a newer alarm takes over from a retry
                pending, open_key, tries, since, repeats_seen = i, errors[0].dedup_key, 0, i, 0
            elif pending is None and entry is not None and entry.repeats > repeats_seen:
                pending, tries, since, repeats_seen = i, 0, i, entry.repeats
        elif schedule is not None and i in schedule and pending is None:
            pending = since = i
        if pending is not None and i - pending >= min_labelled:
            first = max(TRAIN_ROWS, since - pre_trigger_rows, i + 1 - MAX_ROWS)
            recent = data.take(slice(first, i + 1))
            train_rows, holdout = recent.split(HOLDOUT)
            candidate = strategy_from_spec(STRATEGY).propose(model, UpdateData(train_rows))
            attempts += 1
            pending = None
            stale_from = len(own_errors)  # staleness reads the rows after this attempt's
            if evaluate(model, candidate, holdout, None, GateConfig()).promote:
                model, version, promoted = candidate.model, version + 1, promoted + 1
                open_key, tries = None, 0  # the new version's signals are its own
                own_errors, p0 = [], None  # and its own baseline
            elif open_key is not None and tries < RETRIES:
                pending, tries = i, tries + 1  # on every row since the trigger, 100 more
    return correct / (len(data) - TRAIN_ROWS), promoted, attempts


# -- the real loop --------------------------------------------------------------------------------
def online_in_process(champion, data: Dataset) -> tuple[float, dict]:
    """The river champion learning in its serving handle, each label learned before the next
    half-hour's request (as in real time), without Kafka."""
    from learners.handle import ModelHandle, ServedModel

    handle = ModelHandle("elec2", None, ServedModel("v1", champion.digest(), 1, champion))
    online = handle.learn_online()
    correct = 0
    for n, i in enumerate(range(TRAIN_ROWS, len(data))):
        features = dict(zip(FEATURES, map(float, data.X[i]), strict=True))
        correct += handle.predict(features, f"r{i}")[1] == data.y[i]
        handle.observe_label(f"r{i}", data.y[i])
        while online.learned + online.unmatched + online.failed <= n:
            time.sleep(0.0001)
    report = online.report()
    handle.stop_online()
    return correct / (len(data) - TRAIN_ROWS), report


async def live(
    champion,
    data: Dataset,
    rate: float,
    online: bool = False,
    staleness: StalenessCheck | None = None,
) -> dict:
    from driftline.processes import start_worker, stop_worker, wait_until_ready
    from learners.blobstore import LocalBlobStore
    from learners.handle import ModelHandle
    from learners.registry import ModelRegistry
    from learners.worker import LearnerWorker
    from streams.producer import EventProducer
    from streams.topics import drop_topics, ensure_topics

    prefix = f"elec2-{uuid.uuid4().hex[:6]}"
    settings = Settings.from_env().isolated(prefix)
    await ensure_topics(settings)
    import redis

    from contracts.redis_keys import RedisKeys

    client = redis.Redis.from_url(settings.redis_url)
    registry = ModelRegistry(client, RedisKeys(prefix), LocalBlobStore(tempfile.mkdtemp()))
    model_id = "elec2"
    v1 = registry.register(model_id, champion, strategy="trained on the first four weeks")
    registry.promote(model_id, v1.version)
    triggers = {"error": STRATEGY} if staleness is None else {"staleness": STRATEGY}
    policy = UpdatePolicy(
        triggers={} if online else triggers,
        min_labelled=MIN_LABELLED,
        max_rows=MAX_ROWS,
        pre_trigger_rows=MAX_ROWS - MIN_LABELLED,
        bake_samples=0,
        cooldown_s=0.0,
        deadline_event_s=7 * 86_400,
        retries_while_open=RETRIES,
        staleness_baseline_rows=0 if staleness is None else staleness.baseline_rows,
        staleness_allowance=0.05 if staleness is None else staleness.allowance,
        staleness_threshold=5.0 if staleness is None else staleness.threshold,
    )
    decisions = []
    learner = LearnerWorker(
        settings,
        PolicySet(UpdatePolicy(triggers={}), {model_id: policy}),
        registry,
        on_decision=decisions.append,
        poll_s=0.05,
    )
    handle = ModelHandle(model_id, registry.blobs)
    log_path = Path(tempfile.mkdtemp()) / "worker.log"
    worker = start_worker(settings, log_path)
    stop = asyncio.Event()
    tasks = []
    learning = None
    correct = 0
    try:
        await wait_until_ready(log_path, worker)
        tasks = [
            asyncio.create_task(learner.run(stop)),
            asyncio.create_task(
                handle.follow(
                    settings.bootstrap_list, settings.topics.model_updates, stop, registry
                )
            ),
        ]
        await asyncio.wait_for(asyncio.gather(learner.ready.wait(), handle.ready.wait()), 60)
        learning = handle.learn_online() if online else None
        start = time.monotonic()
        async with EventProducer(settings) as producer:
            for n, i in enumerate(range(TRAIN_ROWS, len(data))):
                t = float(data.event_times[i])
                features = dict(zip(FEATURES, map(float, data.X[i]), strict=True))
                version, prediction, confidence = handle.predict(features, f"r{i}")
                correct += prediction == data.y[i]
                await producer.send_inference(
                    InferenceEvent(
                        model_id, version, f"r{i}", t, features, prediction, score=confidence
                    )
                )
                await producer.send_label(LabelEvent(model_id, f"r{i}", data.y[i], t + HALF_HOUR))
                handle.observe_label(f"r{i}", data.y[i])  # the server learns it (online mode)
                if n % 5000 == 4999:
                    print(f"  live: {n + 1} rows served, serving {version}", flush=True)
                delay = start + (n + 1) / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
        # updates under way finish; one still collecting rows after the last row never will
        # (no newer rows come, and event time stops before its deadline): it is not an attempt
        waited = time.monotonic() + 60
        while any(not task.done() for task in learner._jobs.values()):
            if time.monotonic() > waited:
                print("  live: an update still waits for rows the stream no longer has", flush=True)
                break
            await asyncio.sleep(0.2)
    finally:
        handle.stop_online()
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        stop_worker(worker)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        await drop_topics(settings, prefix)
    decided = [d for d in decisions if d.outcome in ("promoted", "rejected")]
    return {
        "accuracy": correct / (len(data) - TRAIN_ROWS),
        "promoted": sum(d.outcome == "promoted" for d in decided),
        "attempts": len(decided),
        "alarm_rows": sorted(
            int((d.trigger_time - T0) / HALF_HOUR) for d in decided if d.trigger_time is not None
        ),
        "swaps": handle.swaps,
        "online": learning.report() if learning is not None else None,
    }


def random_control(champion, data: Dataset, budget: int, seeds: int, **policy: int) -> list[float]:
    """The same strategy and gate, ``budget`` update attempts at random rows, per seed
    (``policy``: :func:`replay`'s ``min_labelled`` and ``pre_trigger_rows``)."""
    control = []
    wait = policy.get("min_labelled", MIN_LABELLED)
    for seed in range(seeds):
        rng = random.Random(seed)
        # rows at least wait + 1 apart, so that every one of them is an attempt (a row that
        # comes while an attempt collects its rows would be skipped)
        first, gap = TRAIN_ROWS + 2000, wait + 1
        room = len(data) - wait - 1 - first - budget * gap
        schedule = {
            first + r + j * gap for j, r in enumerate(sorted(rng.sample(range(room), budget)))
        }
        acc, p, a = replay(champion, data, schedule, **policy)
        control.append(acc)
        print(
            f"  random-time control seed {seed}: {acc:.4f} ({a} attempts, {p} promoted)", flush=True
        )
    return control


def sensitivity(champion, data: Dataset, target_arl: float, seeds: int) -> str:
    """In process only: the alarm-driven replay with the error detector tuned to one false
    alarm per ``target_arl`` values (a learner trigger more sensitive than the page), and the
    random-time control with the same number of attempts."""
    from streams.monitor import MonitorConfig

    config = MonitorConfig(error_detectors=(("cusum", {"target_arl": target_arl}),))
    acc, promoted, attempts = replay(champion, data, monitor_config=config)
    print(f"  alarms, error target_arl {target_arl:g}: {acc:.4f} ({attempts} attempts)", flush=True)
    control = random_control(champion, data, max(1, attempts), seeds)
    return (
        f"| alarms, error detector at one false alarm per {target_arl:,.0f} values (in process) "
        f"| {acc:.4f} | {attempts} attempts, {promoted} promoted |\n"
        + control_row(control, attempts, acc)
    )


def control_row(control: list[float], attempts: int, against: float) -> str:
    """The table row of a random-time control, and how many of its standard deviations
    ``against`` (the triggered run's accuracy) lies above its mean."""
    mean = statistics.mean(control)
    spread = statistics.stdev(control) if len(control) > 1 else 0.0
    above = f"{(against - mean) / spread:+.1f} sd" if spread else "n/a"
    return (
        f"| random-time control: {attempts} attempts, {len(control)} seeds | {mean:.4f} ± "
        f"{spread:.4f} | min {min(control):.4f}, max {max(control):.4f}; triggered run: "
        f"{above} |"
    )


def staleness_study(champion, data: Dataset, check: StalenessCheck, seeds: int) -> str:
    """In process only: updates on the learner's own staleness trigger (``LearnerWorker`` with
    ``staleness_baseline_rows``), no error alarms, against the random-time control with as many
    attempts."""
    acc, promoted, attempts = replay(champion, data, staleness=check)
    print(f"  staleness trigger {check}: {acc:.4f} ({attempts} attempts)", flush=True)
    control = random_control(champion, data, max(1, attempts), seeds)
    return (
        f"| staleness trigger (baseline {check.baseline_rows} rows, allowance "
        f"{check.allowance:g}, threshold {check.threshold:g}; in process) | {acc:.4f} | "
        f"{attempts} attempts, {promoted} promoted |\n" + control_row(control, attempts, acc)
    )


def live_staleness(champion, data: Dataset, check: StalenessCheck, rate: float, seeds: int) -> str:
    """The real loop (Kafka, the monitoring worker, the learner, a serving handle) with the
    learner's staleness trigger as the only trigger, its in-process replay, and the random-time
    control with as many attempts as the live run made."""
    run = asyncio.run(live(champion, data, rate, staleness=check))
    print(f"  live, staleness trigger: {run}", flush=True)
    offline, promoted, attempts = replay(champion, data, staleness=check)
    print(f"  replayed in process: {offline:.4f} ({attempts} attempts)", flush=True)
    budget = max(1, run["attempts"])
    control = random_control(champion, data, budget, seeds)
    setting = (
        f"baseline {check.baseline_rows} rows, allowance {check.allowance:g}, "
        f"threshold {check.threshold:g}"
    )
    return (
        f"| driftline, gated updates on the learner's staleness trigger ({setting}; real loop, "
        f"{rate:g} rows/s) | {run['accuracy']:.4f} | {run['attempts']} attempts, "
        f"{run['promoted']} promoted |\n"
        f"| the same trigger replayed in process | {offline:.4f} | {attempts} attempts, "
        f"{promoted} promoted |\n" + control_row(control, budget, run["accuracy"])
    )


def abrupt(data: Dataset, flips: list[int], seeds: int) -> str:
    """In process only: Elec2 with its label inverted from each row of ``flips`` on (a concept
    that changes rarely and abruptly, which the real series does not), the learner's default
    window (the rows from the trigger on, ``pre_trigger_rows = 0``; 300 of them), and the
    random-time control with as many attempts."""
    y = data.y.copy()
    for row in flips:
        y[row:] = np.where(y[row:] == "1", "0", "1")
    flipped = Dataset(data.X, y, data.feature_names, data.event_times)
    champion = train_champion(flipped)
    policy = {"min_labelled": 300, "pre_trigger_rows": 0}
    acc, promoted, attempts = replay(champion, flipped, **policy)
    print(f"  alarms on the flipped series: {acc:.4f} ({attempts} attempts)", flush=True)
    control = random_control(champion, flipped, max(1, attempts), seeds, **policy)
    where = ", ".join(f"{row:,}" for row in flips)
    return (
        f"| Elec2, label inverted from rows {where} on: alarms (in process) | {acc:.4f} | "
        f"{attempts} attempts, {promoted} promoted |\n"
        + control_row(control, attempts, acc)
        + f"\n| frozen | {frozen(champion, flipped):.4f} | |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/elec2.csv")
    )
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--rate", type=float, default=40.0, help="rows per second served live")
    parser.add_argument(
        "--online-rate", type=float, default=100.0, help="rows per second, online-learning run"
    )
    parser.add_argument("--out", default="")
    parser.add_argument(
        "--sensitivity",
        type=float,
        default=0.0,
        metavar="ARL",
        help="only the in-process study: alarms from an error detector at one false alarm per "
        "ARL values, against the random-time control with as many attempts",
    )
    parser.add_argument(
        "--staleness",
        default="",
        metavar="ROWS,ALLOWANCE,THRESHOLD",
        help="only the in-process study of the learner's staleness trigger (e.g. 200,0.05,5), "
        "against the random-time control with as many attempts",
    )
    parser.add_argument(
        "--live-staleness",
        default="",
        metavar="ROWS,ALLOWANCE,THRESHOLD",
        help="only the real loop with the learner's staleness trigger (e.g. 200,0.05,5), its "
        "in-process replay and the random-time control",
    )
    parser.add_argument(
        "--abrupt",
        default="",
        metavar="ROWS",
        help="only the in-process study on Elec2 with its label inverted from each of these "
        "rows on (comma-separated, e.g. 12000,24000,36000), against the random-time control",
    )
    args = parser.parse_args()
    from river import linear_model, preprocessing, tree

    data = load(Path(args.data))
    if args.abrupt:
        print(abrupt(data, [int(r) for r in args.abrupt.split(",")], args.seeds))
        return
    champion = train_champion(data)
    if args.sensitivity:
        print(sensitivity(champion, data, args.sensitivity, args.seeds))
        return
    if args.staleness or args.live_staleness:
        rows, allowance, threshold = (args.staleness or args.live_staleness).split(",")
        check = StalenessCheck(int(rows), float(allowance), float(threshold))
        if args.staleness:
            print(staleness_study(champion, data, check, args.seeds))
        else:
            print(live_staleness(champion, data, check, args.rate, args.seeds))
        return
    results: list[tuple[str, str, str]] = []
    print("live run through Kafka, the worker and the learner ...", flush=True)
    run = asyncio.run(live(champion, data, args.rate))
    print(f"  live: {run}", flush=True)
    results.append(
        (
            "driftline, gated updates on alarms (real loop)",
            f"{run['accuracy']:.4f}",
            f"{run['attempts']} attempts, {run['promoted']} promoted",
        )
    )
    print("live run, river champion learning online in its serving handle ...", flush=True)
    learner = river_champion(data)
    run_online = asyncio.run(live(learner, data, args.online_rate, online=True))
    print(f"  live online: {run_online}", flush=True)
    report = run_online["online"]
    results.append(
        (
            "driftline, river champion learning each label in its serving handle, guarded "
            "(real loop)",
            f"{run_online['accuracy']:.4f}",
            f"{report['learned']} labels learned, {report['fallbacks']} fallbacks to the "
            f"published version; {args.online_rate:g} rows/s",
        )
    )
    accuracy, report = online_in_process(river_champion(data), data)
    results.append(
        (
            "driftline, the same online learning in process (no Kafka)",
            f"{accuracy:.4f}",
            f"{report['fallbacks']} fallbacks",
        )
    )
    offline, promoted, attempts = replay(champion, data)
    results.append(
        (
            "driftline, same policy replayed in process",
            f"{offline:.4f}",
            f"{attempts} attempts, {promoted} promoted",
        )
    )
    budget = max(1, run["attempts"])
    control = random_control(champion, data, budget, args.seeds)
    spread = statistics.stdev(control) if len(control) > 1 else 0.0
    results.append(
        (
            f"random-time control: {budget} attempts at random times, {args.seeds} seeds",
            f"{statistics.mean(control):.4f} ± {spread:.4f}",
            f"min {min(control):.4f}, max {max(control):.4f}",
        )
    )
    results.append(
        ("frozen (trained on the first four weeks)", f"{frozen(champion, data):.4f}", "")
    )
    logistic = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    results.append(
        ("river online logistic regression (every row)", f"{river_online(data, logistic):.4f}", "")
    )
    results.append(
        (
            "river online logistic regression, updated once a day (48 rows), ungated",
            f"{river_daily(data):.4f}",
            "driftline's `online` strategy on a schedule",
        )
    )
    hat = tree.HoeffdingAdaptiveTreeClassifier(seed=1)
    results.append(
        ("river Hoeffding adaptive tree (every row)", f"{river_online(data, hat):.4f}", "")
    )
    results.append(("no-change (previous label)", f"{no_change(data):.4f}", ""))

    lines = [
        "# Elec2 benchmark",
        "",
        f"`python bench/elec2.py` on `{Path(args.data).name}` ({len(data):,} half-hours).  "
        f"Prequential accuracy on the {len(data) - TRAIN_ROWS:,} rows after the four training "
        "weeks.",
        "",
        "Two ways driftline updates a model, each through the real loop (Kafka, the monitoring "
        "worker, the learner, a serving `ModelHandle`):",
        "",
        f"- **gated updates on alarms** (a torch MLP): error alarm -> {STRATEGY['name']} (all "
        f"layers, Adam, one-cycle, early stop) on the newest {MAX_ROWS} labelled rows once "
        f"{MIN_LABELLED} rows have followed the alarm; the gate (McNemar, privacy and FGSM "
        "probes) decides; no reference sample (the 1996 regime is no guide to 1998); a refused "
        f"update is tried again {MIN_LABELLED} rows later while its alarm stays open (at most "
        f"{RETRIES} times, `retries_while_open`); served at {args.rate:g} rows/s.",
        "- **online learning in the serving handle** (a river scaler + logistic regression, "
        "`handle.learn_online()`): each label is learned where the model serves, in the "
        "handle's thread; serving falls back to the published version while the learning copy "
        "is significantly worse than it (`learners/online_serving.py`); alarms are monitored, "
        f"not acted on; served at {args.online_rate:g} rows/s.  The in-process row learns each "
        "label before the next half-hour's request, as real time would.",
        "",
        "How to read it: the random-time control uses the same strategy, gate and number of "
        "attempts as the live run, at random rows; it and the in-process replay of the alarm "
        "schedule run the same code without Kafka, so those two rows compare like with like.",
        "",
        "| model | prequential accuracy | notes |",
        "|---|---|---|",
        *[f"| {name} | {acc} | {notes} |" for name, acc, notes in results],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
