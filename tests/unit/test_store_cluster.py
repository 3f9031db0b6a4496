"""RedisStore's Cluster mode with a recording client: one transaction per model (one hash
slot each), global keys last, and a failure part-way keeps exactly what was not written.  Also
a flush of some models only (the worker writes its changed models in groups): their writes and
their share of the global counters, nothing of the others'.

The real Cluster run is tests/integration/test_redis_cluster.py; this pins the bookkeeping of a
flush that fails between two models' transactions, which a real cluster cannot be made to do
on cue."""

from __future__ import annotations

import re

from redis.exceptions import ConnectionError as RedisConnectionError

from contracts.redis_keys import RedisKeys
from streams.store import RedisStore


class _Pipeline:
    def __init__(self, client: _Client, transaction: bool) -> None:
        self.client, self.transaction, self.commands = client, transaction, []

    def __getattr__(self, name):
        def command(*args, **kwargs):
            self.commands.append((name, args[0] if args else None, args[1:]))

        return command

    async def watch(self, *names) -> None:  # the token a transaction sets last
        pass

    def multi(self) -> None:
        pass

    async def reset(self) -> None:
        pass

    async def execute(self):
        keys = [key for _, key, _ in self.commands]
        if any(self.client.fail_on in key for key in keys):
            raise RedisConnectionError("node went away")  # before it was applied
        self.client.executed.append((self.transaction, keys))
        self.client.commands.extend((name, key, args) for name, key, args in self.commands)
        for name, key, _ in self.commands:
            if name == "set":
                self.client.strings.add(key)
        return []


class _Client:
    """Records each transaction or command sent, and runs the global step's script."""

    def __init__(self, fail_on: str = "\0") -> None:
        self.fail_on, self.executed, self.commands = fail_on, [], []
        self.strings: set[str] = set()  # keys set (tokens, marks)

    def pipeline(self, transaction: bool = True):
        return _Pipeline(self, transaction)

    async def initialize(self):
        return self

    async def set(self, key: str, value, nx: bool = False, ex=None):
        if nx and key in self.strings:
            return None
        self.strings.add(key)
        return True

    async def sadd(self, key: str, *members) -> None:
        self.executed.append((False, [key]))

    async def eval(self, script: str, numkeys: int, *keys_and_args) -> int:
        """The global step (streams.store._ADD_SHARES): each share not yet marked, added."""
        keys, args = list(keys_and_args[:numkeys]), list(keys_and_args[numkeys:])
        self.executed.append((False, keys))
        at, added = 1, 0
        for mark in keys[1:]:
            n = args[at]
            at += 1
            if mark not in self.strings:
                for i in range(at, at + 2 * n, 2):
                    self.commands.append(("hincrby", keys[0], (args[i], args[i + 1])))
                self.strings.add(mark)
                added += 1
            at += 2 * n
        return added


def _store(client: _Client) -> RedisStore:
    store = RedisStore("redis://unused", RedisKeys("p"), cluster=True)
    store._client = client
    for model in ("a", "b"):
        store.add_checkpoint(model, {"positions": {"t:0": 1}})
        store.add_model_counts(model, {"inferences": 2})
        store.add_metrics(model, {"1m": {"events": 2, "window_s": 60}})
    store.add_counts({"inferences.processed": 4})
    return store


def _tags(keys) -> set[str]:
    return {m.group(1) for key in keys if (m := re.search(r"\{(.+?)\}", key))}


async def test_each_model_is_one_transaction_of_its_own_then_the_global_keys():
    client = _Client()
    assert await _store(client).flush()
    (t1, a), (t2, b), *rest = client.executed
    assert t1 and t2 and not any(t for t, _ in rest)  # models: MULTI/EXEC; then the rest
    assert _tags(a) == {"a"} and _tags(b) == {"b"}  # one hash slot each
    keys = {key for _, keys in rest for key in keys}
    assert {"p:models", "p:counters"} <= keys
    assert _tags(keys) == {"p:counters"}  # the shares' marks, in the counters' slot
    assert _counters(client) == {"inferences.processed": 4}


async def test_a_failure_between_models_keeps_only_what_was_not_written():
    client = _Client(fail_on="{b}")
    store = _store(client)
    assert not await store.flush()
    assert [_tags(keys) for _, keys in client.executed] == [{"a"}]  # a landed, b did not
    # b's transaction failed on the way: applied or not is not known until the next flush
    assert store._checkpoints == {} and [set(e.taken[4]) for e in store.unsettled] == [{"b"}]
    assert dict(store._model_counts) == {}  # a's are not sent twice
    assert store._counts == {None: {"inferences.processed": 4}}  # the global step never ran
    client.fail_on = "\0"
    assert await store.flush()  # b's token was not there: b sent again
    assert store.settled == {"not applied": 1}
    assert [_tags(keys) for _, keys in client.executed[1:2]] == [{"b"}]
    assert store._checkpoints == {} and store._counts == {} and not store.unsettled
    assert _counters(client) == {"inferences.processed": 4}


async def test_a_failed_producer_flush_writes_nothing_and_keeps_everything():
    """The worker flushes its Kafka producer (``before``) between taking the buffers and
    writing them: if Kafka cannot take the alarms, Redis must not say their messages were
    applied."""
    client = _Client()
    store = _store(client)
    store.cluster = False

    async def kafka_down():
        raise RuntimeError("KafkaTimeoutError")

    assert not await store.flush(before=kafka_down)
    assert client.executed == []
    assert set(store._checkpoints) == {"a", "b"}
    assert store._counts == {None: {"inferences.processed": 4}}
    calls = []

    async def kafka_up():
        calls.append(len(client.executed))

    assert await store.flush(before=kafka_up)
    assert calls == [0] and len(client.executed) == 1  # before first, then one transaction


def _counters(client: _Client) -> dict[str, int]:
    """What the global counters were incremented by."""
    total: dict[str, int] = {}
    for name, key, args in client.commands:
        if name == "hincrby" and key == "p:counters":
            total[args[0]] = total.get(args[0], 0) + args[1]
    return total


async def test_a_flush_of_some_models_writes_theirs_and_their_share_of_the_counters():
    client = _Client()
    store = RedisStore("redis://unused", RedisKeys("p"))
    store._client = client
    for model in ("a", "b", "c"):
        store.add_checkpoint(model, {"positions": {"t:0": 1}})
        store.add_counts({"inferences.processed": 10}, model)
        store.add_labelled(model, {"label": 1})
    store.add_counts({"deadletter.total": 1})  # no model's
    assert await store.flush(models={"a"}, final=False)
    assert len(client.executed) == 1 and client.executed[0][0]  # one transaction
    assert _tags(client.executed[0][1]) == {"a"}
    assert _counters(client) == {"inferences.processed": 10}
    assert set(store._checkpoints) == {"b", "c"} and set(store._labelled) == {"b", "c"}
    assert await store.flush(models={"b", "c"}, final=True)
    assert _tags(client.executed[1][1]) == {"b", "c"}
    assert _counters(client) == {"inferences.processed": 30, "deadletter.total": 1}
    assert store._checkpoints == {} and not any(store._counts.values())
