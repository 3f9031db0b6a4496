"""Operator commands: ``bridge``, ``status``, ``alarms``, ``replay``, ``dashboard``, ``bench``.

Registered on the one ``driftline`` app (:mod:`driftline.cli_base`)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from driftline.cli_base import LogLevel, app, console, errors, fail, serve_metrics, settings
from driftline.kafka_partitions import topic_partitions

REPO = Path(__file__).resolve().parents[1]


def _run_until_signal(main) -> None:
    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())


# -- bridge -------------------------------------------------------------------------------------
@app.command()
def bridge(loglevel: LogLevel = "info") -> None:
    """Page people: deliver alarms to Alertmanager, PagerDuty, webhooks and Slack.

    Receivers come from the environment (DRIFTLINE_ALERTMANAGER_WEBHOOK_URL,
    DRIFTLINE_PAGERDUTY_ROUTING_KEY, DRIFTLINE_WEBHOOK_URL, DRIFTLINE_SLACK_WEBHOOK_URL); see
    docs/paging.md.  An alarm's offset is committed only once every receiver has it, or it was
    parked on <prefix>.alarms.retry."""
    from bridges.sinks import sinks_from_env
    from bridges.worker import BridgeConfig, BridgeWorker

    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        sinks = sinks_from_env(os.environ)
        worker = BridgeWorker(settings(), sinks, BridgeConfig.from_env())
    except ValueError as exc:
        fail(str(exc), 2)
    serve_metrics("bridge", 9312)
    console.print(
        f"[bold]bridge[/bold]: {settings().topics.alarms} -> " + ", ".join(repr(s) for s in sinks)
    )

    async def main(stop: asyncio.Event) -> None:
        from streams.topics import ensure_topics

        await ensure_topics(worker.settings)
        await worker.run(stop)

    _run_until_signal(main)


# -- status -------------------------------------------------------------------------------------
async def _lags(s, groups: dict[str, list[str]]) -> list[tuple[str, str, int, int, int | None]]:
    """(group, topic, partition, end offset, committed offset) for each group's topics."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap_list, request_timeout_ms=5000)
    probe = AIOKafkaConsumer(bootstrap_servers=s.bootstrap_list, request_timeout_ms=5000)
    await admin.start()
    await probe.start()
    try:
        rows = []
        for group, topics in groups.items():
            committed = await admin.list_consumer_group_offsets(group)
            for topic in topics:
                tps = await topic_partitions(probe, topic)
                ends = await probe.end_offsets(tps) if tps else {}
                for tp in tps:
                    meta = committed.get(tp)
                    rows.append(
                        (
                            group,
                            topic,
                            tp.partition,
                            ends[tp],
                            None if meta is None or meta.offset < 0 else meta.offset,
                        )
                    )
        return rows
    finally:
        await probe.stop()
        await admin.close()


def _monitors(client, keys, model_id: str) -> tuple[int, tuple[str, float] | None]:
    """How many detectors watch the model, and the one nearest its threshold (statistic /
    threshold), from the worker's latest dashboard point."""
    last = client.xrevrange(keys.series(model_id), count=1)
    if not last:
        return 0, None
    readings = json.loads(last[0][1]["p"])["r"]
    ratios = {k: s / t for k, (s, t) in readings.items() if t}
    if not ratios:
        return len(readings), None
    name = max(ratios, key=ratios.get)
    return len(readings), (name, ratios[name])


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Models, their monitors, open alarms, champion versions and consumer lag, as tables."""
    import redis

    from contracts.redis_client import connect
    from contracts.redis_keys import RedisKeys
    from learners.registry import ModelRegistry

    s = settings()
    keys = RedisKeys(s.key_prefix)
    client = connect(s, decode_responses=True, socket_timeout=5)
    try:
        monitored = sorted(client.smembers(keys.models()))
        registered = sorted(client.smembers(keys.registered_models()))
    except redis.RedisError as exc:
        fail(f"cannot read Redis at {s.redis_url}: {exc}. Is it running? (deploy/stack.sh status)")
    registry = ModelRegistry.from_settings(s)
    models = []
    for model_id in sorted(set(monitored) | set(registered)):
        counters = client.hgetall(keys.model_counters(model_id))
        hour = client.hgetall(keys.metrics(model_id, "1h"))
        open_alarms = client.hgetall(keys.open_alarms(model_id))
        champion = registry.champion(model_id) if model_id in registered else None
        detectors, nearest = _monitors(client, keys, model_id)
        models.append(
            {
                "model": model_id,
                "monitored": model_id in monitored,
                "inferences": int(counters.get("inferences", 0)),
                "labels": int(counters.get("labels", 0)),
                "alarms": int(counters.get("alarms", 0)),
                "open_alarms": sorted(open_alarms),
                "events_1h": int(float(hour.get("events", 0) or 0)),
                "accuracy_1h": hour.get("accuracy") or None,
                "newest_event": float(hour["newest_event_time"])
                if hour.get("newest_event_time")
                else None,
                "champion": champion.version if champion else None,
                "detectors": detectors,
                "nearest_threshold": nearest,
            }
        )
    t = s.topics
    groups = {
        s.app_id: [t.inferences, t.labels],
        f"{s.topic_prefix}-learner": [t.alarms],
        f"{s.topic_prefix}-bridge": [t.alarms],
    }
    try:
        lags = asyncio.run(asyncio.wait_for(_lags(s, groups), 20))
    except Exception as exc:  # the broker is down: say so, still show what Redis knows
        lags = []
        reason = escape(f"{type(exc).__name__}: {exc}")
        errors.print(f"[yellow]consumer lag unavailable[/yellow]: {reason}")
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "models": models,
                    "lag": [
                        {
                            "group": g,
                            "topic": tp,
                            "partition": p,
                            "end": e,
                            "committed": c,
                            "lag": None if c is None else e - c,
                        }
                        for g, tp, p, e, c in lags
                    ],
                }
            )
        )
        return
    table = Table(title=f"models ({s.topic_prefix})")
    for col in (
        "model",
        "champion",
        "inferences",
        "labels",
        "events 1h",
        "accuracy 1h",
        "detectors",
        "nearest threshold",
        "alarms",
        "open alarms",
        "newest event",
    ):
        table.add_column(col, justify="right" if col[0] in "ilea" and col != "model" else "left")
    for m in models:
        acc, nearest = m["accuracy_1h"], m["nearest_threshold"]
        table.add_row(
            m["model"],
            m["champion"] or "-",
            str(m["inferences"]),
            str(m["labels"]),
            str(m["events_1h"]),
            f"{float(acc):.3f}" if acc else "-",
            str(m["detectors"]),
            "-" if nearest is None else f"{nearest[0]} {nearest[1]:.2f}",
            str(m["alarms"]),
            "\n".join(m["open_alarms"]) or "-",
            _ago(m["newest_event"]),
        )
    if not models:
        table.caption = "no model has sent events yet"
    console.print(table)
    lag_table = Table(title="consumer lag")
    for col in ("group", "topic", "partition", "end", "committed", "lag"):
        lag_table.add_column(col)
    for g, tp, p, e, c in lags:
        lag_table.add_row(
            g, tp, str(p), str(e), "-" if c is None else str(c), "-" if c is None else str(e - c)
        )
    console.print(lag_table)


# -- alarms -------------------------------------------------------------------------------------
def _matches(event: dict, model, kind, severity, state) -> bool:
    data = event.get("data") or {}
    return (
        (model is None or data.get("model") == model)
        and (kind is None or (data.get("signal") or {}).get("kind") == kind)
        and (severity is None or data.get("severity") == severity)
        and (state is None or data.get("status") == state)
    )


def _alarm_line(event: dict) -> str:
    d = event["data"]
    mark = {"firing": "[red]FIRING[/red]", "resolved": "[green]RESOLVED[/green]"}.get(
        d.get("status"), d.get("status")
    )
    sig = d.get("signal", {})
    line = (
        f"{event.get('time', '')}  {mark}  [{d.get('severity')}] {d.get('model')} "
        f"{d.get('model_version')}  {sig.get('kind')}:{sig.get('name')}  {d.get('detector')}"
    )
    if "statistic" in d:
        line += f"  {d['statistic']:.4g} > {d['threshold']:.4g}"
    return line


@app.command()
def alarms(
    model: Annotated[str | None, typer.Option(help="only this model")] = None,
    kind: Annotated[str | None, typer.Option(help="feature, score, error, system, ...")] = None,
    severity: Annotated[str | None, typer.Option(help="info, warning or critical")] = None,
    state: Annotated[str | None, typer.Option(help="firing or resolved")] = None,
    last: Annotated[int, typer.Option(help="records per partition to look back")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new ones")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one CloudEvent per line")] = False,
) -> None:
    """Tail the alarms topic (firing and resolved), with filters."""
    from aiokafka import AIOKafkaConsumer

    from contracts.alarms import SEVERITIES

    if severity is not None and severity not in SEVERITIES:
        fail(f"unknown severity {severity!r}: choose {', '.join(SEVERITIES)}", 2)
    if state not in (None, "firing", "resolved"):
        fail("--state is firing or resolved", 2)
    s = settings()

    async def main(stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=s.bootstrap_list, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = await topic_partitions(consumer, s.topics.alarms)
            if not tps:
                fail(f"topic {s.topics.alarms} does not exist: is a worker running?")
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps)
            for tp in tps:
                consumer.seek(tp, max(starts[tp], ends[tp] - last))
            shown = 0
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=500)
                records = sorted(
                    (r for rs in batch.values() for r in rs), key=lambda r: r.timestamp
                )
                for r in records:
                    try:
                        event = json.loads(r.value)
                    except (TypeError, ValueError):
                        continue
                    if not isinstance(event, dict) or not _matches(
                        event, model, kind, severity, state
                    ):
                        continue
                    shown += 1
                    if as_json:
                        sys.stdout.write(json.dumps(event) + "\n")
                        sys.stdout.flush()
                    else:
                        console.print(_alarm_line(event), highlight=False)
                done = all([await consumer.position(tp) >= ends[tp] for tp in tps])
                if done and not follow:
                    break
            if not shown and not as_json:
                errors.print("no alarm matched (look further back with --last)")
        finally:
            await consumer.stop()

    _run_until_signal(main)


# -- replay -------------------------------------------------------------------------------------
@app.command()
def replay(
    source: Annotated[
        str,
        typer.Argument(
            help="a .jsonl, .csv or .parquet file, or topic:START-END (e.g. driftline.inferences:0-5000, "
            "offsets per partition)"
        ),
    ],
    model: Annotated[
        str | None, typer.Option(help="the model to replay (default: the first seen)")
    ] = None,
    report_file: Annotated[
        Path | None, typer.Option("--report", help="write the report as JSON")
    ] = None,
) -> None:
    """Backtest: run recorded traffic through the detectors offline, with a summary report."""
    from driftline.replay import ReplayReport, read_file, save_report
    from driftline.replay import replay as run_replay

    path = Path(source)
    if path.exists():
        probe = ReplayReport(model or "")
        try:
            first = next(iter(read_file(path, model or "replayed", probe)), None)
        except (ValueError, OSError) as exc:
            fail(str(exc), 2)
        if first is None:
            fail(f"{path}: no usable event ({dict(probe.rejected) or 'empty'})")
        model_id = model or first.model_id
        events = read_file(path, model_id, ReplayReport(model_id))
        total = None
    elif ":" in source:
        topic, _, span = source.rpartition(":")
        try:
            start, end = (int(x) for x in span.split("-"))
        except ValueError:
            fail(f"{source!r}: write topic:START-END, e.g. driftline.inferences:0-5000", 2)
        events, model_id = _topic_events(topic, start, end, model)
        total = None
    else:
        fail(f"{source!r} is neither a file nor topic:START-END", 2)
    with Progress(
        TextColumn("[bold]replay[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(model_id, total=total)
        report = run_replay(events, model_id, progress=lambda n: progress.advance(task, n))
    _print_report(report)
    if report_file is not None:
        save_report(report, report_file)
        console.print(f"report written to {report_file}")
    if report.inferences == 0:
        fail(f"no inference of model {model_id!r} in {source}")


def _topic_events(topic: str, start: int, end: int, model: str | None):
    from aiokafka import AIOKafkaConsumer

    from contracts.envelopes import decode_message
    from contracts.events import InvalidEvent

    s = settings()
    kind = "label" if topic.endswith(".labels") else "inference"

    async def read() -> list:
        consumer = AIOKafkaConsumer(bootstrap_servers=s.bootstrap_list, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = await topic_partitions(consumer, topic)
            if not tps:
                fail(f"no topic {topic!r}")
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, start)
            out, left = [], {tp for tp in tps if min(end, ends[tp]) > start}
            while left:
                batch = await consumer.getmany(*left, timeout_ms=1000)
                for tp, records in batch.items():
                    for r in records:
                        if r.offset >= min(end, ends[tp]):
                            left.discard(tp)
                            break
                        try:
                            out += decode_message(r.value, kind).events
                        except InvalidEvent:
                            continue
                    if await consumer.position(tp) >= min(end, ends[tp]):
                        left.discard(tp)
            out.sort(key=lambda e: e.event_time)
            return out
        finally:
            await consumer.stop()

    events = asyncio.run(read())
    if not events:
        fail(f"no event in {topic} offsets {start}-{end}")
    return events, model or events[0].model_id


def _print_report(report) -> None:
    table = Table(
        title=f"replay of {report.model_id}: {report.inferences} inferences, {report.labels} labels"
    )
    table.add_column("signal / detector")
    table.add_column("alarms", justify="right")
    table.add_column("first at inference", justify="right")
    for name, n, first in report.by_signal():
        table.add_row(name, str(n), str(first))
    if not report.alarms:
        table.caption = "no alarm: the detectors stayed quiet on this traffic"
    console.print(table)
    m = report.metrics
    facts = [
        f"{k} {m[k]:.4g}"
        for k in ("accuracy", "mae", "latency_p99_ms", "missing_rate")
        if isinstance(m.get(k), int | float)
    ]
    if report.rejected:
        facts.append("skipped " + ", ".join(f"{k} {v}" for k, v in report.rejected.items()))
    if facts:
        console.print("last day's window: " + "; ".join(facts))


# -- bench --------------------------------------------------------------------------------------
BENCHES = {
    "detectors": "bench/detectors_speed.py",
    "detection": "bench/detection.py",
    "pipeline": "bench/pipeline.py",
    "quiet": "bench/quiet.py",
    "memory": "bench/memory.py",
    "learners": "bench/learner_updates.py",
    "elec2": "bench/elec2.py",
}


@app.command()
def bench(
    name: Annotated[str, typer.Argument(help=", ".join(BENCHES))],
    args: Annotated[list[str] | None, typer.Argument(help="passed to the benchmark")] = None,
) -> None:
    """Run one benchmark from bench/ (a source checkout): pipeline, quiet, memory, ..."""
    script = REPO / BENCHES.get(name, "-")
    if name not in BENCHES:
        fail(f"unknown benchmark {name!r}: choose {', '.join(BENCHES)}", 2)
    if not script.exists():
        fail(f"{script} is missing: benchmarks run from a source checkout of driftline")
    started = time.monotonic()
    code = subprocess.call([sys.executable, str(script), *(args or [])], cwd=REPO)
    console.print(f"{name}: exit {code} after {time.monotonic() - started:.0f}s")
    raise typer.Exit(code)


# -- dashboard ----------------------------------------------------------------------------------
@app.command()
def dashboard(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (its /metrics is there too)")] = 8050,
    loglevel: LogLevel = "info",
) -> None:
    """Serve the live dashboard: metrics, detectors vs thresholds, alarms, model versions."""
    from aiohttp import web

    from driftline.dashboard.server import create_app

    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        web_app = create_app(settings())
    except FileNotFoundError as exc:
        fail(str(exc))
    console.print(f"dashboard on [bold]http://{host}:{port}/[/bold] (Ctrl-C stops it)")
    try:
        web.run_app(web_app, host=host, port=port, print=None, access_log=None)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port")
