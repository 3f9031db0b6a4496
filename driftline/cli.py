"""The ``driftline`` command.

    driftline worker     run the Faust monitoring worker (consumes inferences and labels)
    driftline learner    run the learner worker (consumes alarms, publishes model updates)
    driftline demo       the whole loop on simulated traffic, with a live readout
    driftline metrics M  print model M's rolling metrics from Redis

Connection settings come from the environment (see :mod:`contracts.settings`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys


def _worker(args: argparse.Namespace) -> int:
    from faust.worker import Worker

    from contracts.settings import Settings
    from streams.app import create_app
    from streams.topics import ensure_topics

    asyncio.run(ensure_topics(Settings.from_env()))
    app, _ = create_app()
    Worker(app, loglevel=args.loglevel).execute_from_commandline()
    return 0


def _learner(args: argparse.Namespace) -> int:
    from contracts.settings import Settings
    from learners.worker import LearnerWorker

    logging.basicConfig(
        level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await LearnerWorker(Settings.from_env()).run(stop)

    asyncio.run(main())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from driftline.demo import run_demo

    return asyncio.run(run_demo(events=args.events, rate=args.rate, seed=args.seed))


def _metrics(args: argparse.Namespace) -> int:
    import redis

    from contracts.redis_keys import RedisKeys
    from contracts.settings import Settings

    settings = Settings.from_env()
    keys = RedisKeys(settings.key_prefix)
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    found = False
    for window in ("1m", "1h"):
        row = client.hgetall(keys.metrics(args.model, window))
        if row:
            found = True
            print(f"[{window}]")
            for k in sorted(row):
                print(f"  {k:20s} {row[k]}")
    if not found:
        print(
            f"no metrics for model {args.model!r} under {keys.metrics(args.model, '*')}",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="driftline", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="run the Faust monitoring worker")
    w.add_argument("--loglevel", default="info")
    w.set_defaults(func=_worker)
    le = sub.add_parser("learner", help="run the learner worker")
    le.add_argument("--loglevel", default="info")
    le.set_defaults(func=_learner)
    d = sub.add_parser("demo", help="run the whole loop on simulated traffic")
    d.add_argument(
        "--events", type=int, default=12_000, help="inference events to send (default 12000)"
    )
    d.add_argument("--rate", type=float, default=500.0, help="events per second (default 500)")
    d.add_argument("--seed", type=int, default=7)
    d.set_defaults(func=_demo)
    m = sub.add_parser("metrics", help="print a model's rolling metrics from Redis")
    m.add_argument("model")
    m.set_defaults(func=_metrics)
    args = parser.parse_args(argv)
    if args.command == "worker":
        sys.argv = [sys.argv[0]]  # Faust's Worker reads argv; it must not see ours
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
