"""The learner side, measured: alarm -> new champion serving, fine-tuning speed, compression.

    make stack && eval "$(deploy/stack.sh env)"
    python bench/learner_updates.py [--runs 3] [--out docs/learners-benchmark.md]

1. **Alarm -> serving**, on the real Kafka and Redis: labelled rows of the new regime are already
   in Redis (as the stream worker leaves them); an error alarm is produced on the alarms topic; a
   :class:`~learners.worker.LearnerWorker` fine-tunes, gates, registers and promotes; a
   :class:`~learners.handle.ModelHandle` following the updates topic swaps.  Reported: wall time
   from producing the alarm to the handle serving the new digest, and the job's own share.
   (Waiting for the labels themselves depends on the traffic rate and is not included.)
2. **Fine-tuning throughput**: rows x epochs per second for a 4-64-64-2 MLP on 20,000 rows, by
   what is frozen and with bfloat16 autocast on or off.  Ratios against full fine-tuning in fp32
   measured in the same run.
3. **Compression** of a 4-512-512-2 MLP: blob size, latency per 1,000 rows and accuracy of each
   method against the uncompressed model, as the strategies report them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid

import redis

from contracts.alarms import Alarm, encode_alarm
from contracts.redis_keys import RedisKeys
from contracts.settings import Settings
from driftline.simulation import DriftingScenario
from learners.blobstore import LocalBlobStore
from learners.handle import ModelHandle
from learners.policy import PolicySet, UpdatePolicy
from learners.registry import ModelRegistry
from learners.strategies.base import UpdateData, strategy_from_spec
from learners.worker import LearnerWorker
from streams.monitor import LabelledSample
from streams.topics import drop_topics, ensure_topics


async def alarm_to_serving(run: int) -> dict:
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    settings = Settings.from_env().isolated(prefix)
    await ensure_topics(settings)
    client = redis.Redis.from_url(settings.redis_url)
    registry = ModelRegistry(client, RedisKeys(prefix), LocalBlobStore(tempfile.mkdtemp()))
    model_id = "bench-model"
    scenario = DriftingScenario(seed=run)
    v1 = registry.register(model_id, scenario.train_champion())
    registry.promote(model_id, v1.version)
    registry.set_reference(model_id, scenario.dataset("normal", 2000))
    alarm_time = 1_000_000.0
    for i in range(1000):
        features, truth = scenario.sample("shifted")
        sample = LabelledSample(
            model_id, "v1", f"r{i}", alarm_time + i, features, "0", truth, alarm_time + i
        )
        client.lpush(registry.keys.labelled(model_id), json.dumps(sample.to_dict()))
    policy = UpdatePolicy(
        triggers={"error": {"name": "fine_tune", "freeze": ["body.0.*"], "replay_fraction": 0.5}},
        min_labelled=600,
        bake_samples=0,
    )
    decisions = []
    learner = LearnerWorker(settings, PolicySet(policy), registry, decisions.append, poll_s=0.05)
    handle = ModelHandle(model_id, registry.blobs)
    swapped = asyncio.Event()
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(learner.run(stop)),
        asyncio.create_task(
            handle.follow(
                settings.bootstrap_list,
                settings.topics.model_updates,
                stop,
                registry,
                on_swap=lambda update: swapped.set(),
            )
        ),
    ]
    await asyncio.wait_for(asyncio.gather(learner.ready.wait(), handle.ready.wait()), 60)
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_list, acks="all")
    await producer.start()
    alarm = Alarm(
        model_id, "v1", "error", "error", "cusum", 1.2, 1.0, {}, "critical", alarm_time, 2100
    )
    start = time.perf_counter()
    await producer.send_and_wait(
        settings.topics.alarms, encode_alarm(alarm, "/bench"), key=model_id.encode()
    )
    await asyncio.wait_for(swapped.wait(), 120)
    seconds = time.perf_counter() - start
    await producer.stop()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    await drop_topics(settings, prefix)
    decision = decisions[0]
    return {
        "seconds": seconds,
        "job_seconds": decision.seconds_to_serving,
        "outcome": decision.outcome,
    }


def fine_tune_throughput() -> list[dict]:
    scenario = DriftingScenario(seed=1)
    from learners.adapters.torch_module import TorchAdapter

    champion = TorchAdapter.build(
        "learners.zoo:mlp",
        {"n_features": 4, "n_outputs": 2, "hidden": [64, 64]},
        "binary",
        ["0", "1"],
        ("x1", "x2", "x3", "x4"),
    )
    champion.fit(scenario.dataset("normal", 4000))
    data = UpdateData(scenario.dataset("shifted", 20_000))
    rows = []
    for freeze in (None, ["body.0.*"], "all_but_head"):
        for bf16 in ("off", "on"):
            spec = {
                "name": "fine_tune",
                "freeze": freeze,
                "bf16": bf16,
                "epochs": 5,
                "patience": 0,
                "batch_size": 256,
                "replay_fraction": 0.0,
            }
            candidate = strategy_from_spec(spec).propose(champion, data)
            rows.append(
                {
                    "freeze": str(freeze),
                    "bf16": bf16,
                    "samples_per_s": candidate.report["samples_per_s"],
                    "seconds": candidate.seconds,
                    "epochs": candidate.report["epochs_run"],
                }
            )
    return rows


def compression() -> tuple[dict, list[dict]]:
    scenario = DriftingScenario(seed=2)
    from learners.adapters.torch_module import TorchAdapter
    from learners.torch_training import TrainConfig

    model = TorchAdapter.build(
        "learners.zoo:mlp",
        {"n_features": 4, "n_outputs": 2, "hidden": [512, 512]},
        "binary",
        ["0", "1"],
        ("x1", "x2", "x3", "x4"),
    )
    model.train_config = TrainConfig(epochs=15, bf16="off")
    model.fit(scenario.dataset("normal", 8000))
    data = UpdateData(scenario.dataset("normal", 4000))
    rows = []
    for spec in (
        "quantize",
        {"name": "prune", "amount": 0.5},
        {"name": "low_rank", "rank_fraction": 0.25},
    ):
        candidate = strategy_from_spec(spec).propose(model, data)
        rows.append({"method": candidate.strategy, **candidate.report})
    return {"parameters": model.n_parameters()}, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    lines = [
        "# Learner benchmark",
        "",
        "`python bench/learner_updates.py` (real Kafka and Redis from `make stack`).",
        "",
    ]

    runs = [asyncio.run(alarm_to_serving(r)) for r in range(args.runs)]
    lines += [
        "## Alarm -> new champion serving",
        "",
        "From producing an error alarm to a `ModelHandle` serving the new digest, with 1,000 "
        "labelled rows of the new regime already in Redis (fine-tune, body.0 frozen, gate with "
        "both probes, register, promote, update message, fetch + verify + swap):",
        "",
        "| run | alarm -> serving | of which the update job | outcome |",
        "|---|---|---|---|",
    ]
    for i, r in enumerate(runs):
        lines.append(
            f"| {i + 1} | {r['seconds']:.2f} s | {r['job_seconds']:.2f} s | {r['outcome']} |"
        )
    print("\n".join(lines[-len(runs) - 2 :]), flush=True)

    tune = fine_tune_throughput()
    base = next(r for r in tune if r["freeze"] == "None" and r["bf16"] == "off")["samples_per_s"]
    lines += [
        "",
        "## Fine-tuning throughput",
        "",
        "4-64-64-2 MLP, 20,000 rows, 5 epochs, batch 256, one process on this machine's CPUs. "
        "Ratio: against full fine-tuning in fp32, same run.",
        "",
        "| frozen | bf16 autocast | rows x epochs / s | ratio |",
        "|---|---|---|---|",
    ]
    for r in tune:
        lines.append(
            f"| {r['freeze']} | {r['bf16']} | {r['samples_per_s']:,.0f} | {r['samples_per_s'] / base:.2f} |"
        )
    print("\n".join(lines[-len(tune) :]), flush=True)

    info, rows = compression()
    lines += [
        "",
        "## Compression",
        "",
        f"4-512-512-2 MLP ({info['parameters']:,} parameters) trained on the demo's normal traffic; "
        "each method's own report (validation slice of 800 rows).",
        "",
        "| method | blob size | size ratio | latency / 1k rows | latency ratio | accuracy before -> after |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        size, lat, acc = r["size_bytes"], r["latency_ms_per_1k"], r["validation_score"]
        lines.append(
            f"| {r['method']} | {size['before'] / 1e6:.2f} -> {size['after'] / 1e6:.2f} MB | {size['ratio']:.2f} | "
            f"{lat['before']:.2f} -> {lat['after']:.2f} ms | {lat['ratio']:.2f} | "
            f"{acc['before']:.4f} -> {acc['after']:.4f} |"
        )
    text = "\n".join(lines) + "\n"
    print("\n".join(lines[-len(rows) - 2 :]))
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
