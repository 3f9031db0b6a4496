"""The ``driftline`` command (typer + rich).

    driftline worker                    the Faust monitoring worker (inferences + labels in)
    driftline learner                   the learner worker (alarms in, gated model updates out)
    driftline demo                      the whole loop on simulated traffic, narrated
    driftline metrics MODEL             a model's rolling metrics from Redis
    driftline models list|show|register|promote|rollback|reference ...
    driftline reference set <model> train.csv

Connection settings come from the environment (see :mod:`contracts.settings`).  Exit codes: 0
done, 1 the thing asked about does not exist or was refused, 2 bad usage.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from driftline.cli_base import (
    LogLevel,
    app,
    console,
    errors,
    models_app,
    reference_app,
    serve_metrics,
)
from driftline.cli_base import fail as _fail
from driftline.cli_base import registry as _registry
from driftline.cli_base import settings as _settings


# -- processes ----------------------------------------------------------------------------------
@app.command()
def worker(loglevel: LogLevel = "info") -> None:
    """Run the Faust monitoring worker (consumes inferences and labels, publishes alarms)."""
    from faust.worker import Worker

    from streams import telemetry
    from streams.app import create_app, tune_gc
    from streams.topics import ensure_topics

    asyncio.run(ensure_topics(_settings()))
    try:
        faust_app, runtime = create_app()
    except ValueError as exc:  # the config file: the message names the table and key
        _fail(str(exc), 2)
    telemetry.install(runtime, telemetry.faust_highwater(faust_app))
    serve_metrics("worker", 9310)
    tune_gc()
    sys.argv = [sys.argv[0]]  # Faust's Worker reads argv; it must not see ours
    Worker(faust_app, loglevel=loglevel).execute_from_commandline()


@app.command()
def learner(loglevel: LogLevel = "info") -> None:
    """Run the learner worker: alarms in, gated model updates out (policy: DRIFTLINE_POLICY)."""
    from learners.policy import PolicySet
    from learners.worker import LearnerWorker

    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = _settings()
    try:
        policies = PolicySet.from_file(settings.policy_file)
        in_config = (
            PolicySet.from_config_file(settings.config_file) if settings.config_file else None
        )
    except ValueError as exc:
        _fail(str(exc), 2)
    if in_config is not None:
        if settings.policy_file:
            _fail(
                "the update policy is set twice: DRIFTLINE_POLICY and the [policy] table of "
                "DRIFTLINE_CONFIG; keep one",
                2,
            )
        policies = in_config
    registry = _registry()
    serve_metrics("learner", 9311)
    if not registry.models():
        errors.print(
            "[yellow]no model is registered yet[/yellow]: alarms will be skipped until one is. "
            "Register a champion with `driftline models register <model> <file> --adapter <kind>`."
        )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await LearnerWorker(settings, policies, registry).run(stop)

    asyncio.run(main())


@app.command()
def demo(
    events: Annotated[int, typer.Option(help="inference events per scene")] = 12_000,
    rate: Annotated[float, typer.Option(help="events per second")] = 500.0,
    seed: int = 7,
    keep_open: Annotated[
        bool, typer.Option("--keep-open", help="keep the dashboard and pages up until Ctrl-C")
    ] = False,
) -> None:
    """Run the whole loop on simulated traffic: drift, alarm, page, fine-tune, gate, hot swap."""
    from driftline.demo import run_demo

    try:
        status = asyncio.run(run_demo(events=events, rate=rate, seed=seed, keep_open=keep_open))
    except KeyboardInterrupt:
        status = 0
    raise typer.Exit(status)


@app.command()
def metrics(
    model: str,
    window: Annotated[
        list[str] | None,
        typer.Option("--window", "-w", help="1m, 1h or 1d (repeatable; default all)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Print a model's rolling metrics from Redis (in Python: ``contracts.metrics.read_metrics``)."""
    from contracts.metrics import WINDOWS, read_metrics
    from contracts.redis_keys import RedisKeys

    settings = _settings()
    try:
        found = read_metrics(settings, model, window or WINDOWS)
    except ValueError as exc:
        _fail(str(exc), 2)
    if not found:
        keys = RedisKeys(settings.key_prefix)
        _fail(f"no metrics for model {model!r} under {keys.metrics(model, '*')}")
    if as_json:
        console.print_json(json.dumps(found))
        return
    for name, row in found.items():
        features = row.pop("feature_stats", None)
        table = Table(title=f"{model} [{name}]")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for k in sorted(row):
            value = row[k]
            text = json.dumps(value) if isinstance(value, dict | list) else str(value)
            table.add_row(k, "-" if value is None else text)
        console.print(table)
        if features:
            console.print(_feature_table(f"{model} [{name}] features", features))


def _feature_table(title: str, stats: dict[str, dict[str, float | None]]) -> Table:
    table = Table(title=title)
    table.add_column("feature")
    columns = ("n", "mean", "std", "min", "p05", "p50", "p95", "max")
    for column in columns:
        table.add_column(column, justify="right")
    for feature, row in sorted(stats.items()):
        cells = [row.get(c) for c in columns]
        table.add_row(feature, *("-" if v is None else f"{v:.6g}" for v in cells))
    return table


# -- reference profiles -------------------------------------------------------------------------
@reference_app.command("set")
def reference_set(
    model: str,
    csv_file: Annotated[
        Path, typer.Argument(help="CSV of training inputs, one column per feature")
    ],
    drop: Annotated[
        list[str] | None,
        typer.Option(
            "--drop", help="a column that is not a feature (the label, an id); repeatable"
        ),
    ] = None,
    rows: Annotated[int, typer.Option(help="keep at most this many rows")] = 20_000,
) -> None:
    """Store a model's reference profile: the worker calibrates its input detectors from it
    when it first meets the model (no checkpoint yet), instead of from live traffic."""
    from contracts.redis_client import connect
    from contracts.redis_keys import RedisKeys
    from streams.profile import ProfileError, ReferenceProfile

    try:
        profile = ReferenceProfile.from_csv(csv_file, tuple(drop or ()), rows)
    except ProfileError as exc:
        _fail(str(exc), 2)
    settings = _settings()
    keys = RedisKeys(settings.key_prefix)
    connect(settings).set(keys.reference_profile(model), profile.to_json())
    console.print(
        f"{model}: reference profile of {len(profile.rows)} rows, features {profile.features}"
    )
    if len(profile.rows) < 2000:
        errors.print(
            f"[yellow]note:[/yellow] {len(profile.rows)} rows: detectors that learn from 2,000 "
            "values finish learning on live traffic"
        )
    client = connect(settings)
    if client.exists(keys.checkpoint(model)):
        errors.print(
            f"[yellow]note:[/yellow] {model} already has a checkpoint, which wins over the "
            "profile; delete it to start from the profile"
        )


# -- models -------------------------------------------------------------------------------------
def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


@models_app.command("list")
def models_list() -> None:
    """Every registered model with its champion."""
    registry = _registry()
    names = registry.models()
    if not names:
        _fail("no model is registered: `driftline models register <model> <file> --adapter <kind>`")
    table = Table(title="registered models")
    for column in ("model", "champion", "previous", "versions", "generation", "adapter"):
        table.add_column(column)
    for name in names:
        aliases = registry.aliases(name)
        versions = registry.versions(name)
        by_digest = {v.digest: v for v in versions}
        champion = by_digest.get(aliases.get("champion", ""))
        previous = by_digest.get(aliases.get("previous", ""))
        table.add_row(
            name,
            champion.version if champion else "-",
            previous.version if previous else "-",
            str(len(versions)),
            aliases.get("generation", "0"),
            champion.adapter if champion else "-",
        )
    console.print(table)


@models_app.command("show")
def models_show(
    model: str,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """A model's versions, aliases, registry history, refused candidates and learner decisions."""
    registry = _registry()
    versions = registry.versions(model)
    if not versions:
        _fail(f"model {model!r} is not registered (see `driftline models list`)")
    aliases = registry.aliases(model)
    raw = registry.client.lrange(registry.keys.registry(model, "decisions"), 0, 9)
    decisions = [json.loads(d) for d in raw]
    shadows = registry.handle_reports(model, "shadow")
    onlines = registry.handle_reports(model, "online")
    if as_json:
        doc = {
            "aliases": aliases,
            "versions": [v.to_dict() for v in versions],
            "history": registry.history(model),
            "rejections": registry.rejections(model),
            "decisions": decisions,
            "shadow_reports": shadows,
            "online_reports": onlines,
        }
        console.print_json(json.dumps(doc, default=str))
        return
    marks = {v: k for k, v in aliases.items() if k != "generation"}
    table = Table(title=f"{model}: versions (generation {aliases.get('generation', '0')})")
    for column in (
        "version",
        "alias",
        "strategy",
        "adapter",
        "parameters",
        "size",
        "created",
        "digest",
    ):
        table.add_column(column)
    by_digest = {v.digest: v.version for v in versions}
    for v in versions:
        table.add_row(
            v.version,
            marks.get(v.digest, ""),
            v.strategy + (f" from {by_digest.get(v.parent, v.parent[:15])}" if v.parent else ""),
            v.adapter,
            str(v.description.get("n_parameters", "")),
            f"{v.size_bytes / 1024:.1f} KiB",
            _when(v.created_at),
            v.digest[7:19],
        )
    console.print(table)
    history = Table(title="registry history (newest first)")
    for column in ("time", "action", "version", "generation", "reason"):
        history.add_column(column)
    for entry in registry.history(model, 10):
        version = entry.get("version") or by_digest.get(entry.get("digest", ""), "")
        history.add_row(
            _when(entry["at"]),
            entry["action"],
            str(version),
            str(entry.get("generation", "")),
            str(entry.get("reason", ""))[:80],
        )
    console.print(history)
    rejections = registry.rejections(model, 5)
    if rejections:
        table = Table(title="refused candidates (newest first)")
        table.add_column("time")
        table.add_column("strategy")
        table.add_column("reason")
        for r in rejections:
            table.add_row(_when(r["at"]), str(r.get("strategy", "")), str(r.get("reason", "")))
        console.print(table)
    if decisions:
        table = Table(title="learner decisions (newest first)")
        for column in ("time", "trigger", "outcome", "detail"):
            table.add_column(column)
        for d in decisions:
            table.add_row(_when(d["at"]), d["trigger"], d["outcome"], d["detail"][:100])
        console.print(table)
    if shadows:
        table = Table(title="shadow reports from serving handles")
        for column in ("handle", "time", "candidate", "scored", "agreement", "labelled"):
            table.add_column(column)
        table.add_column("candidate / champion accuracy")
        for handle, r in sorted(shadows.items()):
            accuracy = "-"
            if r.get("candidate_accuracy") is not None:
                accuracy = f"{r['candidate_accuracy']:.3f} / {r['champion_accuracy']:.3f}"
            agreement = "-" if r.get("agreement") is None else f"{r['agreement']:.3f}"
            table.add_row(
                handle,
                _when(r["at"]),
                str(r.get("version", "")),
                str(r.get("scored", 0)),
                agreement,
                str(r.get("labelled", 0)),
                accuracy,
            )
        console.print(table)
    if onlines:
        table = Table(title="online learning in serving handles")
        for column in ("handle", "time", "version", "learned", "serving", "fallbacks"):
            table.add_column(column)
        table.add_column("learning / published (last labels)")
        for handle, r in sorted(onlines.items()):
            key = "accuracy" if "online_accuracy" in r else "mae"
            score = "-"
            if r.get(f"online_{key}") is not None:
                score = f"{key} {r[f'online_{key}']:.3f} / {r[f'base_{key}']:.3f} ({r['window']})"
            table.add_row(
                handle,
                _when(r["at"]),
                str(r.get("version", "")),
                str(r.get("learned", 0)),
                str(r.get("serving", "")),
                str(r.get("fallbacks", 0)),
                score,
            )
        console.print(table)


@models_app.command("register")
def models_register(
    model: str,
    blob: Annotated[Path, typer.Argument(help="model file as the adapter writes it (to_bytes)")],
    adapter: Annotated[str, typer.Option(help="linear, torch, river or ensemble")] = "torch",
    champion: Annotated[
        bool, typer.Option("--champion/--no-champion", help="promote it at once")
    ] = True,
) -> None:
    """Register a model file as a new version (checked by loading it first)."""
    from learners.adapters.base import InvalidModel, adapter_from_bytes

    try:
        loaded = adapter_from_bytes(adapter, blob.read_bytes())
    except OSError as exc:
        _fail(f"cannot read {blob}: {exc}", 2)
    except InvalidModel as exc:
        _fail(f"{blob} is not a loadable {adapter} model: {exc}")
    registry = _registry()
    version = registry.register(model, loaded, strategy="manual")
    console.print(
        f"registered {model} {version.version} ({version.digest[:19]}, "
        f"{loaded.describe().task}, {loaded.n_parameters()} parameters)"
    )
    if champion:
        _promote(registry, model, version.digest, "registered by hand")


def _promote(registry, model: str, ref: str, reason: str) -> None:
    from learners.registry import RegistryError

    try:
        move = registry.promote(model, ref, reason=reason)
    except RegistryError as exc:
        _fail(str(exc))
    _announce(registry, model, move)


def _announce(registry, model: str, move) -> None:
    """Tell serving handles (one update message), and the operator."""
    from aiokafka import AIOKafkaProducer

    settings = _settings()
    version = registry.get(model, move.champion)
    update = version.to_update(move.generation, move.action, reason="operator")

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_list, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(
                settings.topics.model_updates, update.to_json(), key=model.encode()
            )
        finally:
            await producer.stop()

    try:
        asyncio.run(asyncio.wait_for(send(), 15))
        told = f"announced on {settings.topics.model_updates}"
    except Exception as exc:  # the registry moved; handles also read it when they start
        told = f"[yellow]not announced on Kafka ({type(exc).__name__}); handles pick it up on start[/yellow]"
    console.print(
        f"{model}: champion is now {version.version} (generation {move.generation}); {told}"
    )


@models_app.command("promote")
def models_promote(
    model: str, version: Annotated[str, typer.Argument(help="v<n>, a digest, or candidate")]
) -> None:
    """Make a version the champion (the current one becomes `previous`)."""
    _promote(_registry(), model, version, "promoted by hand")


@models_app.command("rollback")
def models_rollback(model: str) -> None:
    """Bring the previous champion back."""
    from learners.registry import RegistryError

    registry = _registry()
    try:
        move = registry.rollback(model, reason="rolled back by hand")
    except RegistryError as exc:
        _fail(str(exc))
    _announce(registry, model, move)


@models_app.command("reference")
def models_reference(
    model: str,
    csv_file: Annotated[Path, typer.Argument(help="CSV with feature columns and the target")],
    target: Annotated[str, typer.Option(help="the target column")] = "label",
    regression: bool = False,
    rows: Annotated[int, typer.Option(help="keep at most this many rows")] = 2000,
) -> None:
    """Store a reference sample: the gate's fixed holdout and the learner's replay data."""
    import csv

    from learners.data import Dataset

    try:
        with csv_file.open(newline="") as f:
            records = list(csv.DictReader(f))
    except OSError as exc:
        _fail(f"cannot read {csv_file}: {exc}", 2)
    if not records or target not in records[0]:
        _fail(f"{csv_file} has no column {target!r}", 2)
    features = [c for c in records[0] if c != target]
    try:
        rows_ = [{c: float(r[c]) for c in features} for r in records]
    except ValueError as exc:
        _fail(f"feature columns must be numbers: {exc}", 2)
    data = Dataset.from_records(
        rows_, [r[target] for r in records], feature_names=features, regression=regression
    ).sample(rows)
    registry = _registry()
    registry.set_reference(model, data)
    console.print(f"{model}: reference sample of {len(data)} rows, features {features}")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 done, 1 refused or not found, 2 usage)."""
    try:
        app(args=argv, prog_name="driftline")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        errors.print(str(exc.code))
        return 1
    return 0


import driftline.cli_ops  # noqa: E402, F401  (registers bridge, status, alarms, replay, ...)

if __name__ == "__main__":
    sys.exit(main())
