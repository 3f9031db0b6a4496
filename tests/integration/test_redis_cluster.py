"""The stream worker against a real 3-node Redis Cluster (Debian's redis-server, started here
with ``--cluster-enabled yes`` and joined by ``redis-cli --cluster create``).

Each model's writes are one transaction on its ``{model}``-tagged keys; models spread over the
three nodes' slots.  The worker is killed with SIGKILL mid-stream and restarted: every model's
counters, windows and checkpointed positions end exactly as if nothing had happened.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis

from contracts.events import InferenceEvent, LabelEvent
from contracts.redis_client import connect
from contracts.redis_keys import RedisKeys
from streams.producer import EventProducer
from streams.topics import ensure_topics
from tests.integration.conftest import start_worker, stop_worker, wait_until
from tests.integration.lost_answers import lose_answers

MODELS = [f"cl-{i}" for i in range(9)]
PER_MODEL = 600


def _free_base() -> int:
    """A port p with p, p+1, p+2 and their cluster bus ports (p + 10000 ...) all free."""
    for base in range(17100, 19000, 10):
        ports = [base + i for i in range(3)] + [base + 10000 + i for i in range(3)]
        free = True
        for port in ports:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    free = False
                    break
        if free:
            return base
    raise RuntimeError("no free ports for a Redis Cluster")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, stack):
    """Three empty nodes, all 16,384 slots assigned; stopped (and their files removed) after."""
    base = _free_base()
    ports = [base, base + 1, base + 2]
    root = Path(tmp_path_factory.mktemp("redis-cluster"))
    for port in ports:
        node = root / str(port)
        node.mkdir()
        subprocess.run(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes",
             "--cluster-enabled", "yes", "--cluster-config-file", str(node / "nodes.conf"),
             "--dir", str(node), "--save", "", "--appendonly", "no",
             "--logfile", str(node / "redis.log"), "--pidfile", str(node / "redis.pid")],
            check=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not all(_answers(p) for p in ports):
            assert time.monotonic() < deadline, "cluster nodes did not start"
            time.sleep(0.1)
        create = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert create.returncode == 0, create.stdout + create.stderr
        client = redis.Redis(port=ports[0], decode_responses=True)
        deadline = time.monotonic() + 30
        while client.cluster("INFO").get("cluster_state") != "ok":
            assert time.monotonic() < deadline, "the cluster did not reach cluster_state:ok"
            time.sleep(0.2)
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for port in ports:
            subprocess.run(
                ["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True
            )


def _answers(port: int) -> bool:
    try:
        return redis.Redis(port=port, socket_timeout=1).ping()
    except redis.RedisError:
        return False


def _traffic() -> list[tuple[str, bytes]]:
    """Predictions and, a little later, their labels, interleaved over the models."""
    now = time.time() - 600
    out = []
    for i in range(PER_MODEL):
        for m in MODELS:
            t = now + i * 0.1
            out.append(("inference", InferenceEvent(m, "v1", f"{m}-{i}", t, {"x": float(i % 5)},
                                                    i % 2, score=0.8).to_json()))  # fmt: skip
            if i >= 20:  # the label of the prediction made 20 steps earlier (some wrong)
                j = i - 20
                label = int((j % 2) != (j % 7 == 0))
                out.append(("label", LabelEvent(m, f"{m}-{j}", label, t).to_json()))
    return out


async def _send(settings, traffic, start: int, stop: int) -> None:
    async with EventProducer(settings) as producer:
        for kind, raw in traffic[start:stop]:
            topic = settings.topics.inferences if kind == "inference" else settings.topics.labels
            await producer.send_raw(topic, raw, raw.split(b'"model_id":"')[1].split(b'"')[0])
        await producer.flush()


def _state(client, keys: RedisKeys) -> dict:
    out = {}
    for m in MODELS:
        window = client.hgetall(keys.metrics(m, "1h"))
        out[m] = {
            "counters": client.hgetall(keys.model_counters(m)),
            "1h": {k: window[k] for k in ("events", "labelled", "accuracy")},
        }
    return out


async def test_the_worker_writes_each_model_in_its_own_slot_and_survives_sigkill_exactly(
    settings, cluster, tmp_path
):
    traffic = _traffic()
    labels = sum(kind == "label" for kind, _ in traffic)
    runs = {}
    for run in ("calm", "killed"):
        mine = dataclasses.replace(
            settings.isolated(f"{settings.app_id}-{run}-{uuid.uuid4().hex[:4]}"),
            redis_url=cluster,
            redis_cluster=True,
        )
        await ensure_topics(mine)
        client = connect(mine, decode_responses=True)
        keys = RedisKeys(mine.key_prefix)

        def processed(kind: str, client=client, keys=keys) -> int:
            return int(client.hget(keys.counters(), f"{kind}.processed") or 0)

        log = tmp_path / f"{run}.log"
        worker = start_worker(mine, log)
        try:
            if run == "calm":
                await _send(mine, traffic, 0, len(traffic))
            else:
                half = len(traffic) // 2
                await _send(mine, traffic, 0, half)
                await wait_until(lambda: processed("inferences") > 1000, 60, "some progress")
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=30)
                worker = start_worker(mine, tmp_path / "restarted.log")
                await _send(mine, traffic, half, len(traffic))

            def done(client=client, keys=keys) -> bool:
                counts = [client.hgetall(keys.model_counters(m)) for m in MODELS]
                seen = {k: sum(int(c.get(k, 0)) for c in counts) for k in ("inferences", "labels")}
                # both: labels can all be in while inferences of another agent still are not
                return seen["labels"] >= labels and seen["inferences"] >= PER_MODEL * len(MODELS)

            await wait_until(done, 180, "every inference and label counted")
            await asyncio.sleep(2)  # later flushes would show a double count
            runs[run] = _state(client, keys)
            # the models really are spread over the three nodes
            slots = {client.keyslot(keys.checkpoint(m)) for m in MODELS}
            owners = {client.get_node_from_key(keys.checkpoint(m)).port for m in MODELS}
            assert len(slots) == len(MODELS) and len(owners) == 3, (slots, owners)
            # the global counters too, killed or not (a share a crash left in a model's
            # outbox is added when the restarted worker loads that model)
            assert processed("inferences") == PER_MODEL * len(MODELS)
            assert processed("labels") == labels
        finally:
            if worker.poll() is None:
                stop_worker(worker, log if run == "calm" else tmp_path / "restarted.log")
            client.close()  # the cluster's nodes go away with the module, keys and all
    calm, killed = runs["calm"], runs["killed"]
    for m in MODELS:
        assert calm[m]["counters"]["inferences"] == str(PER_MODEL), calm[m]
        assert calm[m]["1h"]["events"] == str(PER_MODEL), calm[m]
        # every label's prediction was sent: each one joins (a race once left some waiting)
        assert calm[m]["counters"]["joined"] == str(PER_MODEL - 20), calm[m]
        assert killed[m] == calm[m], m


def test_the_model_registry_registers_promotes_and_rolls_back_on_the_cluster(
    settings, cluster, tmp_path
):
    """The registry's scripts touch one model's keys only (one slot); the set of registered
    models is written on its own."""
    from learners.adapters import LinearAdapter
    from learners.blobstore import LocalBlobStore
    from learners.registry import ModelRegistry, RegistryConflict

    mine = dataclasses.replace(settings, redis_url=cluster, redis_cluster=True)
    client = connect(mine)
    registry = ModelRegistry(client, RedisKeys(mine.key_prefix), LocalBlobStore(tmp_path))
    models = [f"reg-{i}" for i in range(6)]
    for model in models:
        a = registry.register(model, LinearAdapter(["x"], [1.0]))
        b = registry.register(model, LinearAdapter(["x"], [2.0]))
        assert (a.version, b.version) == ("v1", "v2")
        registry.promote(model, "v1")
        registry.promote(model, "v2", expected_champion=a.digest)
        with pytest.raises(RegistryConflict):
            registry.promote(model, "v1", expected_champion=a.digest)  # a stale learner
        back = registry.rollback(model, reason="test")
        assert back.generation == 3 and registry.champion(model).digest == a.digest
    assert set(models) <= set(registry.models())
    owners = {client.get_node_from_key(RedisKeys(mine.key_prefix).registry(m, "aliases")).port
              for m in models}  # fmt: skip
    assert len(owners) >= 2, "the models should spread over the nodes"
    client.close()


def _cluster_store(settings, cluster: str, name: str):
    from streams.store import RedisStore

    mine = dataclasses.replace(
        settings.isolated(f"{settings.app_id}-{name}-{uuid.uuid4().hex[:4]}"),
        redis_url=cluster,
        redis_cluster=True,
    )
    keys = RedisKeys(mine.key_prefix)
    client = connect(mine, decode_responses=True)
    return keys, client, lambda: RedisStore(mine.redis_url, keys, cluster=True)


def _owing(store, models: list[str], n: int) -> None:
    for m in models:
        store.add_model_counts(m, {"inferences": n})
        store.add_counts({"inferences.processed": n}, m)
        store.add_checkpoint(m, {"n": n})
    store.add_counts({"deadletter.total": 1})  # no model's


def _assert_counted_once(client, keys: RedisKeys, models: list[str], n: int) -> None:
    """What :func:`_owing` buffered, in Redis once: global and model counters, outboxes empty."""
    assert int(client.hget(keys.counters(), "inferences.processed")) == n * len(models)
    assert int(client.hget(keys.counters(), "deadletter.total")) == 1
    for m in models:
        assert client.hget(keys.model_counters(m), "inferences") == str(n)
        assert client.hlen(keys.counters_outbox(m)) == 0


async def test_a_worker_that_dies_before_a_flush_s_last_step_leaves_its_global_counts_owed(
    settings, cluster
):
    """Regression test: the global counters were written in a last step after the model
    transactions, so a worker that died between them lost those increments for good.  Each
    model's share now waits in its outbox, and the next worker to load the model adds it."""
    keys, client, new_store = _cluster_store(settings, cluster, "owed")
    models = MODELS[:4]
    dying = new_store()
    _owing(dying, models, 5)

    async def dies(*args, **kwargs):
        raise ConnectionError("the worker is killed here")

    dying._add_shares = dies  # after every model transaction, before the global counters
    assert not await dying.flush()
    assert client.hget(keys.counters(), "inferences.processed") is None
    assert all(client.hlen(keys.counters_outbox(m)) == 1 for m in models)
    heir = new_store()  # the worker that gets the models next
    for m in models:
        assert await heir.load_checkpoint(m) == {"n": 5}
    assert int(client.hget(keys.counters(), "inferences.processed")) == 5 * len(models)
    assert all(client.hlen(keys.counters_outbox(m)) == 0 for m in models)
    # had the first worker lived, its retry would add nothing twice (the shares are marked),
    # and the share no model owns, which it alone held, goes in then
    del dying._add_shares
    assert await dying.flush()
    assert int(client.hget(keys.counters(), "inferences.processed")) == 5 * len(models)
    assert int(client.hget(keys.counters(), "deadletter.total")) == 1
    await dying.close()
    await heir.close()


async def test_a_lost_answer_of_the_global_step_adds_nothing_twice(settings, cluster):
    """The last step applied, its answer lost: the worker adds the shares again, and their
    marks make that add nothing."""
    keys, client, new_store = _cluster_store(settings, cluster, "lost")
    models = MODELS[4:7]
    store = new_store()
    _owing(store, models, 3)
    real = store.client.eval

    async def answer_lost(*args):
        await real(*args)
        raise ConnectionError("the answer was lost")

    store.client.eval = answer_lost
    assert not await store.flush()
    store.client.eval = real
    assert int(client.hget(keys.counters(), "inferences.processed")) == 3 * len(models)
    assert await store.flush()  # adds the owed shares again: nothing changes
    assert not store.owed
    _assert_counted_once(client, keys, models, 3)
    await store.close()


async def test_a_cluster_model_transaction_whose_answer_was_lost_counts_once(settings, cluster):
    """A model's transaction applied on its node, its answer lost: settled as applied (its
    WATCHed token is there), its share of the global counters owed and added once, the
    models not yet written sent in the next flush."""
    keys, client, new_store = _cluster_store(settings, cluster, "lostm")
    models = MODELS[7:9]
    store = new_store()
    _owing(store, models, 4)
    await store.client.initialize()
    lose_answers(store.client, applied=True)
    assert not await store.flush()
    del store.client.pipeline
    assert await store.flush()
    assert store.settled == {"applied": 1}
    _assert_counted_once(client, keys, models, 4)
    await store.close()
