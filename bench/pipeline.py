"""The stream pipeline against the real broker and Redis: where one worker stands.

    make stack && eval "$(deploy/stack.sh env)"
    python bench/pipeline.py [--events 100000] [--models 10] [--out docs/pipeline-benchmark.md]

Events: 20 numeric features, a prediction and a score each, spread over ``--models`` models (the
issue's test load: 100,000 events, 10 models), which send in turns (:func:`interleaved`).  Each
figure is measured in the same run, on topics of its own:

- **raw consume**: aiokafka ``getmany`` + ``orjson.loads`` of every message (the floor; the
  same parser the worker uses);
- **no-op Faust agent**: a Faust app whose agent does nothing with each message (subprocess,
  with the worker's garbage-collector settings, ``streams.app.tune_gc``);
- **decode floor**: a Faust agent that takes batches as the worker does (``noack_take`` of
  ``DRIFTLINE_BATCH_MAX`` messages) and decodes each with the worker's decoder
  (``contracts.envelopes.decode_message``: parse and check), then acknowledges it: what the
  framework and the decoding cost before any monitoring;
- **driftline worker**: ``driftline worker`` end to end (decode, monitor, Redis), from its first
  processed batch to its last, read from its /metrics (in-memory counters each batch moves);

each for single-event messages and for batch envelopes of 100 events, as rows and as columns
(``docs/schemas.md``), plus the worker's RSS after
the run and the alarm latency (produce -> alarm on the topic) at a fixed offered load
(``--alarm-rate`` events/s, in envelopes of ``--alarm-envelope``).

Then the labels of the columnar run's predictions, in envelopes of 100 (a tenth of them
contradicting the prediction), each a minute after its prediction: published once that worker
has stopped, and read by a fresh one (raw consume and worker rate, as above).  So every label's
prediction waits in Redis, as it does for labels that come late or after a restart.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

FEATURES = [f"f{i}" for i in range(20)]
_FAUST_APP = """
import os, sys, time, faust
topic_name, expected, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
app = faust.App("{name}-" + topic_name, broker="kafka://" + sys.argv[4], value_serializer="raw",
                key_serializer="raw", web_enabled=False, consumer_auto_offset_reset="earliest")
topic = app.topic(topic_name, value_type=bytes, key_type=bytes)
seen, first = [0], [0.0]

def done():
    with open(out, "w") as f:
        f.write(str(time.perf_counter() - first[0]))
    os._exit(0)  # measured: no need for a graceful Faust shutdown
{agent}
if __name__ == "__main__":
    from streams.app import tune_gc  # the worker's process settings, for a like-for-like ratio
    tune_gc()
    sys.argv = [sys.argv[0], "worker", "--loglevel=warn"]
    app.main()
"""
NOOP_APP = _FAUST_APP.format(
    name="noop",
    agent="""
@app.agent(topic)
async def noop(stream):
    async for value in stream:
        if not seen[0]:
            first[0] = time.perf_counter()
        seen[0] += 1
        if seen[0] == expected:
            done()
""",
)
DECODE_APP = _FAUST_APP.format(
    name="floor",
    agent="""
from contracts.envelopes import decode_message
size, within = int(sys.argv[5]), float(sys.argv[6])

@app.agent(topic)
async def decode(stream):
    async for batch in stream.noack_take(size, within=within):
        if not seen[0]:
            first[0] = time.perf_counter()
        for event in batch:
            decode_message(event.value, "inference")
            event.ack()
        seen[0] += len(batch)
        if seen[0] >= expected:
            done()
""",
)


def make_events(n: int, models: int, seed: int = 0):
    from contracts.events import InferenceEvent

    rng = random.Random(seed)
    now = time.time()
    per_model = max(1, n // models)
    return [
        InferenceEvent(
            f"pipe-{i // per_model}",
            "v1",
            f"r{i}",
            now + i * 0.001,
            {name: rng.gauss(0, 1) for name in FEATURES},
            rng.randint(0, 1),
            score=rng.random(),
        )
        for i in range(n)
    ]


def by_model(events):
    groups: dict[str, list] = {}
    for event in events:
        groups.setdefault(event.model_id, []).append(event)
    return groups


async def produce(settings, events, envelope: int, columnar: bool = False) -> int:
    """Publish ``events`` (singly, or in envelopes of ``envelope``, row or columnar); return
    messages sent."""
    from streams.producer import EventProducer

    sent = 0
    async with EventProducer(settings, linger_ms=20) as producer:
        for block in interleaved(events, envelope):
            if envelope <= 1:
                await producer.send_inference(block[0])
            elif columnar:
                await producer.send_inference_columns(block)
            else:
                await producer.send_inference_batch(block)
            sent += 1
    return sent


def make_labels(events, seed: int = 1):
    """A label for each prediction, a minute later; a tenth of them say otherwise."""
    from contracts.events import LabelEvent

    rng = random.Random(seed)
    return [
        LabelEvent(
            e.model_id,
            e.request_id,
            1 - e.prediction if rng.random() < 0.1 else e.prediction,
            e.event_time + 60.0,
        )
        for e in events
    ]


async def produce_labels(settings, labels, envelope: int) -> int:
    """Publish ``labels`` in envelopes of ``envelope``, the models in turns; return messages."""
    from streams.producer import EventProducer

    sent = 0
    async with EventProducer(settings, linger_ms=20) as producer:
        for block in interleaved(labels, envelope):
            await producer.send_label_batch(block)
            sent += 1
    return sent


def interleaved(events, size: int) -> list[list]:
    """Each model's events in blocks of ``size``, the models taking turns (as concurrent model
    servers publish), so a worker's batch holds many models, not one model's long run."""
    per_model = [
        [group[start : start + size] for start in range(0, len(group), size)]
        for group in by_model(events).values()
    ]
    turns = itertools.zip_longest(*per_model)
    return [block for turn in turns for block in turn if block is not None]


async def raw_consume(settings, n_events: int, topic: str = "") -> float:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic or settings.topics.inferences,
        bootstrap_servers=settings.bootstrap_list,
        auto_offset_reset="earliest",
        group_id=f"raw-{uuid.uuid4().hex[:6]}",
    )
    await consumer.start()
    seen, start = 0, None
    try:
        while seen < n_events:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                if start is None:
                    start = time.perf_counter()
                for record in records:
                    seen += _events_in(orjson.loads(record.value))
    finally:
        await consumer.stop()
    return n_events / (time.perf_counter() - start)


def _events_in(doc: dict) -> int:
    """Events in one message: a single event, an envelope or a columnar envelope."""
    if "events" in doc:
        return len(doc["events"])
    return len(doc["columns"]["request_id"]) if "columns" in doc else 1


def noop_agent(settings, n_messages: int, n_events: int) -> float:
    return _faust_rate(NOOP_APP, settings, n_messages, n_events)


def decode_floor(settings, n_messages: int, n_events: int) -> float:
    """Events/s of a Faust agent that takes and decodes as the worker does, and nothing else."""
    extra = [str(settings.batch_max), repr(settings.batch_wait_s)]
    return _faust_rate(DECODE_APP, settings, n_messages, n_events, extra)


def _faust_rate(
    app: str, settings, n_messages: int, n_events: int, extra: list[str] | None = None
) -> float:
    """Events/s of the Faust app ``app`` (its own process) through the inference topic's
    ``n_messages`` messages, from its first message to its last."""
    work = Path(tempfile.mkdtemp())
    script, out = work / "app.py", work / "seconds"
    script.write_text(app)
    path = os.pathsep.join(
        filter(None, [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")])
    )
    proc = subprocess.run(
        [sys.executable, str(script), settings.topics.inferences, str(n_messages), str(out),
         settings.bootstrap_list[0], *(extra or [])],
        cwd=work, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip
    if not out.exists():
        raise RuntimeError(f"Faust agent failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    return n_events / float(out.read_text())


async def worker_rate(settings, n_events: int, kind: str = "inferences") -> tuple[float, float]:
    """Events/s of ``driftline worker`` on an already filled topic (``kind``: "inferences" or
    "labels"), and its RSS (MB) after.

    Progress is read from the worker's own /metrics (its in-memory counters, moved by each
    batch), not from the counters it flushes to Redis once a second: those would put the end
    of a short run up to a second late."""
    from driftline.processes import start_worker, stop_worker, wait_until_ready

    port = _free_port()
    given = os.environ.get("DRIFTLINE_METRICS_PORT")
    os.environ["DRIFTLINE_METRICS_PORT"] = str(port)  # the worker's environment, copied
    log_path = Path(tempfile.mkdtemp()) / "worker.log"
    try:
        proc = start_worker(settings, log_path)
    finally:
        if given is None:
            del os.environ["DRIFTLINE_METRICS_PORT"]
        else:
            os.environ["DRIFTLINE_METRICS_PORT"] = given
    try:
        await wait_until_ready(log_path, proc, timeout=120)
        first_t = first_n = None
        while True:
            n = await asyncio.to_thread(_processed, port, kind)
            now = time.perf_counter()
            if n and first_t is None:
                first_t, first_n = now, n
            if n >= n_events:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited; see {log_path}")
            await asyncio.sleep(_poll_wait(n, n_events, first_t, first_n, now))
        rss = _rss_mb(proc.pid)
        rate = (n - first_n) / (now - first_t) if now > first_t else float("nan")
        return rate, rss
    finally:
        stop_worker(proc)


def _poll_wait(n: int, n_events: int, first_t, first_n, now: float) -> float:
    """Seconds to the next look at /metrics: each look costs the worker (the exposition of every
    model's readings: about 6 % at ten looks a second), so look often only at the start and as
    the end nears (half the time left at the rate so far, 0.05-0.5 s)."""
    if first_t is None or n <= first_n or now <= first_t:
        return 0.05
    rate = (n - first_n) / (now - first_t)
    return min(0.5, max(0.05, 0.5 * (n_events - n) / rate))


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _processed(port: int, kind: str = "inferences") -> int:
    """Events of ``kind`` the worker has processed, from its Prometheus endpoint (0 until up)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            text = answer.read().decode()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("driftline_worker_events_total{") and (
            f'kind="{kind}"' in line and 'outcome="processed"' in line
        ):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def alarm_latency(settings, rate: float, seconds: float, envelope: int) -> list[float]:
    """Produce at ``rate`` events/s (in envelopes of ``envelope``) with a feature shift
    halfway; seconds from an alarm's event (stamped when produced) to the alarm arriving on
    the alarms topic."""
    from aiokafka import AIOKafkaConsumer

    from contracts.alarms import decode_alarm
    from contracts.events import InferenceEvent
    from driftline.processes import start_worker, stop_worker, wait_until_ready
    from streams.producer import EventProducer

    log_path = Path(tempfile.mkdtemp()) / "worker.log"
    proc = start_worker(settings, log_path)
    latencies: list[float] = []
    consumer = AIOKafkaConsumer(
        settings.topics.alarms,
        bootstrap_servers=settings.bootstrap_list,
        auto_offset_reset="earliest",
    )
    try:
        await wait_until_ready(log_path, proc, timeout=120)
        await consumer.start()
        rng = random.Random(1)
        total = int(rate * seconds)
        start = time.monotonic()

        async def collect(stop: asyncio.Event) -> None:
            while not stop.is_set():
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    arrived = time.time()
                    for record in records:
                        latencies.append(arrived - decode_alarm(record.value).event_time)

        stop = asyncio.Event()
        collector = asyncio.create_task(collect(stop))
        async with EventProducer(settings, linger_ms=1) as producer:
            for first in range(0, total, envelope):
                batch = []
                for i in range(first, min(first + envelope, total)):
                    shift = 3.0 if i > total // 2 else 0.0
                    features = {
                        name: rng.gauss(shift if j < 10 else 0.0, 1)
                        for j, name in enumerate(FEATURES)
                    }
                    batch.append(
                        InferenceEvent(
                            "lat-model", "v1", f"l{i}", time.time(), features, 1, score=0.8
                        )
                    )
                if envelope > 1:
                    await producer.send_inference_batch(batch)
                else:
                    await producer.send_inference(batch[0])
                delay = start + (first + len(batch)) / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            sent_all = time.monotonic()
        await asyncio.sleep(3.0)
        stop.set()
        await collector
        behind = sent_all - start - seconds
        if behind > 0.5:
            print(f"note: the producer fell {behind:.1f} s behind the offered rate", flush=True)
    finally:
        await consumer.stop()
        stop_worker(proc)
    return latencies


def isolated(prefix: str):
    from contracts.settings import Settings

    return Settings.from_env().isolated(f"{prefix}-{uuid.uuid4().hex[:6]}")


def drop_keys(settings) -> None:
    """Delete the run's Redis keys: they would otherwise sit in the server for their TTL (a day
    for waiting predictions), millions of fields over a few runs."""
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    batch = []
    for key in client.scan_iter(match=f"{settings.key_prefix}:*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            client.delete(*batch)
            batch.clear()
    if batch:
        client.delete(*batch)


async def run(args) -> str:
    from streams.topics import drop_topics, ensure_topics

    events = make_events(args.events, args.models)
    rows = []
    for envelope, columnar in ((1, False), (100, False), (100, True)):
        settings = isolated(f"pipe{envelope}{'c' * columnar}")
        await ensure_topics(settings)
        messages = await produce(settings, events, envelope, columnar)
        raw = await raw_consume(settings, len(events))
        noop = await asyncio.to_thread(noop_agent, settings, messages, len(events))
        floor = await asyncio.to_thread(decode_floor, settings, messages, len(events))
        worker, rss = await worker_rate(settings, len(events))
        rows.append((envelope, columnar, messages, raw, noop, floor, worker, rss))
        if columnar:  # their labels, for a fresh worker: each prediction waits in Redis
            messages = await produce_labels(settings, make_labels(events), 100)
            label_raw = await raw_consume(settings, len(events), settings.topics.labels)
            label_rate, label_rss = await worker_rate(settings, len(events), "labels")
            labels = ("labels", messages, label_raw, label_rate, label_rss)
            print(f"labels: raw {label_raw:,.0f}/s, driftline {label_rate:,.0f}/s", flush=True)
        await drop_topics(settings, settings.topic_prefix)
        drop_keys(settings)
        print(f"envelope {envelope}{' columnar' * columnar}: raw {raw:,.0f}/s, no-op Faust {noop:,.0f}/s, "
              f"decode floor {floor:,.0f}/s, driftline {worker:,.0f}/s, RSS {rss:.0f} MB", flush=True)  # fmt: skip
    latency_settings = isolated("pipelat")
    await ensure_topics(latency_settings)
    lat = await alarm_latency(
        latency_settings, args.alarm_rate, args.alarm_seconds, args.alarm_envelope
    )
    await drop_topics(latency_settings, latency_settings.topic_prefix)
    drop_keys(latency_settings)
    lines = [
        "# Pipeline benchmark",
        "",
        f"`python bench/pipeline.py --events {args.events} --models {args.models}`: one worker "
        "process on this machine, "
        "real Kafka and Redis; 20 features, a prediction and a score per event, "
        f"{len(by_model(events))} models.  Rates are events per second; ratios against the "
        "same run's raw consumer, no-op Faust agent and decode floor (a Faust agent that takes "
        "and decodes as the worker does, and monitors nothing).",
        "",
        "| messages | raw aiokafka consume + decode | no-op Faust agent | decode floor | "
        "driftline worker | driftline / raw | driftline / no-op | floor / raw | "
        "driftline / floor | worker RSS |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for envelope, columnar, messages, raw, noop, floor, worker, rss in rows:
        kind = "single events" if envelope == 1 else f"envelopes of {envelope}"
        kind += " (columnar)" if columnar else ""
        lines.append(
            f"| {kind} ({messages:,} messages) | {raw:,.0f} | {noop:,.0f} | {floor:,.0f} | "
            f"{worker:,.0f} | {worker / raw:.3f} | {worker / noop:.2f} | {floor / raw:.2f} | "
            f"{worker / floor:.2f} | {rss:.0f} MB |"
        )
    _, messages, raw, worker, rss = labels
    lines.append(
        f"| their labels, envelopes of 100 ({messages:,} messages) | {raw:,.0f} | - | - | "
        f"{worker:,.0f} | {worker / raw:.3f} | - | - | - | {rss:.0f} MB |"
    )
    if lat:
        q = statistics.quantiles(lat, n=100)
        lines += [
            "",
            f"Alarm latency at {args.alarm_rate:g} events/s offered for {args.alarm_seconds:g} s "
            f"(envelopes of {args.alarm_envelope}) "
            f"(10 of 20 features shift halfway): {len(lat)} alarms, p50 {q[49] * 1000:.0f} ms, "
            f"p99 {q[98] * 1000:.0f} ms (event stamped at produce -> alarm read from the topic).",
        ]
    else:
        lines += ["", "Alarm latency: no alarm arrived (see the worker log)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--alarm-rate", type=float, default=10_000.0)
    parser.add_argument("--alarm-envelope", type=int, default=20)
    parser.add_argument("--alarm-seconds", type=float, default=8.0)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    text = asyncio.run(run(args))
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
