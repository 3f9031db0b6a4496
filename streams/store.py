"""Thin Redis persistence under the pure monitors (sink contract: ``add_*`` then ``flush``).

Writes are buffered in memory and sent in MULTI/EXEC transactions, so a model's detector
checkpoint (with the offsets it reflects), its counters and its share of the global counters
land together or not at all.  A flush may be given some models only (``models``: the worker
writes its changed models in groups of ``streams.runtime.FLUSH_MODELS``, so a flush of many
models does not hold all their checkpoints at once); the global counters no model owns go with
the group marked ``final``.  A failed flush keeps the buffer (metrics and checkpoints are overwritten by
newer ones, samples and counters are retried), so a Redis outage delays what readers see but
loses nothing the worker still holds.

On a Redis Cluster (``cluster=True``) a transaction may touch one hash slot only: each model's
writes (checkpoint, metrics, counters, samples, open alarms, waiting predictions: all keys
tagged ``{<model>}``) are one transaction of their own, and the models set and the global
counters follow in a last step.  A model's state is then exact after a crash as on a single
Redis, and so are the global counters (``<prefix>:counters``): each model's transaction also
puts its share of the global increments in an outbox in its own slot
(``<prefix>:{<model>}:counters-outbox``, field: the flush's token), and the last step adds the
shares with one Lua script on the counters' node, which marks each share applied
(``{<prefix>:counters}:applied:<token>:<model>``, in the counters' slot) and skips those
already marked.  A share a crash left in an outbox is added when a worker next loads that model
(:meth:`RedisStore.load_checkpoint`); an answer lost or a step failed, the worker adds it again,
and the marks make that harmless.  Only the increments no model owns (dead letters without a
model id) are held in the worker's memory until that step.

A transaction whose answer is lost (the connection broke, or the socket timed out, after it was
sent) may have been applied or not: sending its writes again could count them twice, dropping
them could lose them.  Each transaction therefore WATCHes a key of its own (a random token,
``<prefix>:flush:<token>``, or ``<prefix>:{<model>}:flush:<token>`` on a Cluster) and sets it
last.  Before the next flush, the store settles it with ``SET <token> NX``: if the key is
there, the transaction was applied and its data is dropped; if not, the ``SET`` makes sure it
never will be (its WATCH fails its EXEC should it still arrive), and its data is sent again.
So the store can give Redis commands a timeout (``socket_timeout``) without the risk of a
double count.  On a Cluster each model's transaction is guarded so (its token key in its
slot), and its share of the global counters follows it: owed if it was applied, sent again
with it if not.  (redis-py 8.1's asyncio Cluster client fails a transaction, WATCH or not,
that is its first command, "attached to a different loop": the store initialises it first.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import orjson
from redis import asyncio as aioredis
from redis.exceptions import RedisError, WatchError

from contracts.events import LabelEvent
from contracts.redis_client import async_client
from contracts.redis_keys import RedisKeys
from streams import checkpoint_parts
from streams.join import StoredPrediction
from streams.pending import PendingPredictions
from streams.profile import ReferenceProfile

log = logging.getLogger(__name__)
T = TypeVar("T")


class _StagedCheckpoint(NamedTuple):
    digests: checkpoint_parts.Digests  # of every field, as Redis holds them once written
    sent: int  # bytes of the fields written
    unchanged: int  # bytes of the fields left out


SERIES_TTL_S = 86_400  # a model's dashboard series outlives its last point by a day
FLUSH_TOKEN_TTL_S = 86_400  # a transaction's token outlives any wait to settle it
#: connection options of the store's client: a command that gets no answer fails after this
#: (and is settled as a lost answer, never sent twice blindly); a half-open TCP connection is
#: found by keepalive instead of hanging a flush for hours
REDIS_OPTIONS = {"socket_timeout": 30.0, "socket_connect_timeout": 10.0, "socket_keepalive": True}


class _Unsettled(NamedTuple):
    """A transaction whose answer was lost: the data it carried, until the store knows."""

    token_key: str
    taken: tuple  # as RedisStore._take returns it, restricted to what the transaction wrote
    pending: tuple  # as PendingPredictions.take returns it, likewise
    outbox_token: str = ""  # a Cluster model's: its global share is owed under it if applied


class _Owed(NamedTuple):
    """A Cluster flush's shares of the global counters (model, or None for no model's ->
    increments), written to the models' outboxes and not yet added to ``<prefix>:counters``."""

    token: str
    shares: dict[str | None, dict[str, int]]


def metrics_ttl(window_s: float | None) -> int:
    """Seconds a window's metrics key lives after its last write: twice the window, at least
    ten minutes (so a short outage of the worker does not blank the dashboards)."""
    return int(max(600.0, 2.0 * float(window_s or 0.0)))


def _hash_value(value: Any) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    return value


class RedisStore:
    def __init__(
        self,
        redis_url: str,
        keys: RedisKeys,
        labelled_keep: int = 5000,
        join_ttl_s: float = 86_400.0,
        series_keep: int = 720,
        cluster: bool = False,
    ) -> None:
        self.redis_url = redis_url
        self.cluster = cluster
        self.keys = keys
        self.labelled_keep = labelled_keep
        self.pending = PendingPredictions(keys, join_ttl_s)
        self._client: aioredis.Redis | aioredis.RedisCluster | None = None
        self._metrics: dict[str, dict[str, dict[str, Any]]] = {}
        self._labelled: dict[str, list[str]] = defaultdict(list)
        self._model_counts: dict[str, Counter[str]] = defaultdict(Counter)
        #: global counter increments by the model they came from (None: no model's)
        self._counts: dict[str | None, Counter[str]] = defaultdict(Counter)
        self._checkpoints: dict[str, dict[str, str]] = {}
        # per model: the digest of each checkpoint field as Redis holds it (unknown: absent)
        self._written: dict[str, checkpoint_parts.Digests] = {}
        self.checkpoint_bytes: Counter[str] = Counter()  # "written" and "unchanged" (skipped)
        self._open_alarms: dict[str, dict[str, str]] = {}
        self._series: list[tuple[str, bytes]] = []
        self.series_keep = series_keep
        self.failed_flushes = 0
        self.failed_loads = 0
        self.unsettled: list[_Unsettled] = []  # oldest first
        self.owed: list[_Owed] = []  # a Cluster's global increments not yet added, oldest first
        self.settled = Counter()  # "applied" and "not applied" (then sent again)

    @property
    def client(self) -> aioredis.Redis:
        # Created lazily so the connection pool binds to the running event loop.
        if self._client is None:
            self._client = async_client(self.redis_url, self.cluster, **REDIS_OPTIONS)
        return self._client

    def add_metrics(self, model_id: str, windows: dict[str, dict[str, Any]]) -> None:
        self._metrics[model_id] = windows

    def add_series_point(self, model_id: str, point: dict[str, Any]) -> None:
        """One point of the model's dashboard time series (best effort: not checkpointed)."""
        self._series.append((model_id, json.dumps(point, separators=(",", ":")).encode()))

    def add_labelled(self, model_id: str, sample: dict[str, Any]) -> None:
        self._labelled[model_id].append(_sample_json(sample))

    def add_model_counts(self, model_id: str, counts: dict[str, int]) -> None:
        self._model_counts[model_id].update(counts)

    def add_counts(self, counts: dict[str, int], model_id: str | None = None) -> None:
        """Increments of the global counters; those that came from ``model_id``'s events are
        written in the same transaction as its checkpoint."""
        self._counts[model_id].update(counts)

    def add_open_alarms(self, model_id: str, alarms: dict[str, dict[str, Any]]) -> None:
        """The model's open alarms now (dedup key -> alarm); replaces what Redis holds."""
        self._open_alarms[model_id] = {
            k: json.dumps(v, separators=(",", ":")) for k, v in alarms.items()
        }

    async def open_alarms(self, model_id: str) -> dict[str, dict[str, Any]]:
        """The open alarms of ``model_id`` as last flushed (dedup key -> alarm)."""
        raw = await self.client.hgetall(self.keys.open_alarms(model_id))
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def add_pending(
        self,
        model_id: str,
        written: Sequence[StoredPrediction],
        consumed: Sequence[tuple[str, float]],
    ) -> None:
        """The label join's journal: predictions now waiting, and those a label consumed."""
        self.pending.add(model_id, written, consumed)

    async def load_pending(
        self, model_id: str, labels: Sequence[LabelEvent]
    ) -> list[StoredPrediction]:
        """Waiting predictions for these labels (see :mod:`streams.pending`).  Like a
        checkpoint read, a Redis error is retried, never taken for "not there"."""
        return await self._read_retrying(
            f"the waiting predictions of {model_id}",
            lambda: self.pending.load(self.client, model_id, labels),
        )

    def add_checkpoint(self, model_id: str, checkpoint: dict[str, Any]) -> None:
        """Buffer the model's newest checkpoint; the flush writes the fields that differ from
        what Redis holds (:mod:`streams.checkpoint_parts`)."""
        self._checkpoints[model_id] = checkpoint_parts.split(checkpoint)

    def forget(self, model_id: str) -> None:
        """The model left this worker (evicted or moved by a rebalance): forget what its
        checkpoint holds, so that a later write rewrites all of it rather than a delta against
        fields another worker may have written meanwhile."""
        self._written.pop(model_id, None)

    async def load_checkpoint(self, model_id: str) -> dict[str, Any] | None:
        """The model's last checkpoint, or None if it has none (or it is not JSON: logged).

        A Redis error is *not* "no checkpoint": starting blank would re-apply redelivered
        messages and then overwrite the good checkpoint.  It retries with backoff (1 s doubling
        to 30 s) until Redis answers; the model's messages wait meanwhile."""
        key = self.keys.checkpoint(model_id)

        async def read() -> tuple[str, Any]:
            kind = await self.client.type(key)
            kind = kind.decode() if isinstance(kind, bytes) else kind
            if kind == "hash":
                return kind, await self.client.hgetall(key)
            if kind == "string":  # written whole, by a version before delta checkpoints
                return kind, await self.client.get(key)
            return kind, None

        self._written.pop(model_id, None)
        if self.cluster:
            await self._read_retrying(
                f"the global counters owed by {model_id}", lambda: self._pay_outbox(model_id)
            )
        kind, raw = await self._read_retrying(f"the checkpoint of {model_id}", read)
        if not raw:
            return None
        try:
            if kind == "string":
                return json.loads(raw)  # the first flush rewrites it as a hash
            fields = checkpoint_parts.as_text(raw)
            checkpoint = checkpoint_parts.join(fields)
        except ValueError as exc:
            log.warning("checkpoint of %s is not JSON (%s); starting afresh", model_id, exc)
            return None
        self._written[model_id] = checkpoint_parts.digests(fields)
        return checkpoint

    async def load_profile(self, model_id: str) -> ReferenceProfile | None:
        """The model's reference profile, if one was set (``driftline reference set``); an
        unreadable one is logged and ignored (the detectors then learn from live traffic)."""
        try:
            raw = await self.client.get(self.keys.reference_profile(model_id))
        except (RedisError, OSError) as exc:
            log.warning("reading the reference profile of %s failed (%s); none used", model_id, exc)
            return None
        if raw is None:
            return None
        try:
            return ReferenceProfile.from_json(raw)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("reference profile of %s is unreadable (%s); none used", model_id, exc)
            return None

    async def _read_retrying(self, what: str, read: Callable[[], Awaitable[T]]) -> T:
        """``read()`` until Redis answers: backoff from 1 s doubling to 30 s, a fresh
        connection each time (a read that fails must never pass for "nothing there")."""
        delay = 1.0
        while True:
            try:
                return await read()
            except (RedisError, OSError) as exc:
                self.failed_loads += 1
                log.warning("cannot read %s (%s); retrying in %.0fs", what, exc, delay)
                await self._reset_client()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _reset_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    def _take(self, models: set[str] | None, final: bool) -> tuple:
        """Hand over the buffers (of ``models`` only, if given; the counters no model owns if
        ``final``): what arrives during a flush's await goes to the next flush, never into a
        buffer that is about to be cleared."""
        buffers = (
            self._metrics,
            self._labelled,
            self._model_counts,
            self._counts,
            self._checkpoints,
            self._open_alarms,
        )
        if models is None:
            self._metrics, self._labelled = {}, defaultdict(list)
            self._model_counts, self._counts = defaultdict(Counter), defaultdict(Counter)
            self._checkpoints, self._open_alarms = {}, {}
            return buffers
        owners = [*models, None] if final else models
        return tuple({m: buffer.pop(m) for m in owners if m in buffer} for buffer in buffers)

    def _give_back(self, taken: tuple) -> None:
        """After a failed flush: merge what was taken under what arrived meanwhile (newer
        snapshots and checkpoints win; samples keep their order; counts add up)."""
        metrics, labelled, model_counts, counts, checkpoints, open_alarms = taken
        for model_id, windows in metrics.items():
            self._metrics.setdefault(model_id, windows)
        for model_id, alarms in open_alarms.items():
            self._open_alarms.setdefault(model_id, alarms)
        for model_id, samples in labelled.items():
            self._labelled[model_id][:0] = samples
        for model_id, c in model_counts.items():
            self._model_counts[model_id].update(c)
        for model_id, c in counts.items():
            self._counts[model_id].update(c)
        for model_id, checkpoint in checkpoints.items():
            self._checkpoints.setdefault(model_id, checkpoint)

    async def flush(
        self,
        before: Callable[[], Awaitable[None]] | None = None,
        models: set[str] | None = None,
        final: bool = True,
    ) -> bool:
        """Send what is buffered (for ``models`` only, if given, with the counters no model
        owns if ``final``); return False (and keep the data) if Redis failed.

        ``before`` is awaited after the buffers are taken and before anything is written (the
        worker flushes its Kafka producer there); if it raises, nothing is written either."""
        if self.unsettled and not await self._settle():
            return False
        if self.owed:
            try:
                await self._pay_owed()
            except (RedisError, OSError) as exc:
                log.warning("cannot yet add the global counters a flush owes (%s)", exc)
                await self._reset_client()
                return False
        if not (
            self._series
            or self._metrics
            or self._labelled
            or self._model_counts
            or any(self._counts.values())
            or self._checkpoints
            or self._open_alarms
            or self.pending.has_changes
        ):
            return True
        taken = self._take(models, final)
        pending = self.pending.take(models)
        metrics, labelled, model_counts, counts, checkpoints, open_alarms = taken
        touched = {*metrics, *labelled, *model_counts, *checkpoints, *open_alarms}
        touched |= {*pending[0], *pending[1]}
        touched |= {m for m in counts if m is not None}
        written: set[str] = set()
        staged: dict[str, _StagedCheckpoint] = {}  # kept once Redis confirmed the write
        unsent: set[str | None] | None = None  # the models of a transaction sent, unanswered
        token_key, pipe = "", None
        outbox_token = uuid.uuid4().hex  # a Cluster's: the global shares this flush writes
        owed: set[str | None] = set()  # models whose global share is now owed
        try:
            if before is not None:
                await before()
            if self.cluster:
                await self.client.initialize()  # before any transaction (see the module's doc)
                for model_id in sorted(touched):  # one transaction per model: one hash slot
                    token_key = self.keys.flush_token(uuid.uuid4().hex, model_id)
                    pipe = await self._guarded(token_key)
                    self._write_model(pipe, model_id, taken, pending, staged)
                    share = _nonzero(counts.get(model_id))
                    if share:
                        outbox = self.keys.counters_outbox(model_id)
                        pipe.hset(outbox, outbox_token, json.dumps(share))
                    unsent = {model_id}
                    await self._execute(pipe, token_key)
                    unsent = None
                    written.add(model_id)
                    if model_id in staged:
                        self._checkpoint_written(model_id, staged.pop(model_id))
                owed = self._owe(outbox_token, counts, {*written, None})
                if metrics:
                    await self.client.sadd(self.keys.models(), *metrics)
                await self._pay_owed()
            else:
                token_key = self.keys.flush_token(uuid.uuid4().hex)
                pipe = await self._guarded(token_key)
                for model_id in touched:
                    self._write_model(pipe, model_id, taken, pending, staged)
                self._write_global(pipe, taken)
                unsent = {*touched, None}  # None: the counters no model owns
                await self._execute(pipe, token_key)
                unsent = None
                for model_id, checkpoint in staged.items():
                    self._checkpoint_written(model_id, checkpoint)
        except Exception as exc:  # Redis, or the producer flush in ``before``
            self.failed_flushes += 1
            if pipe is not None and unsent is None:  # failed before EXEC: still WATCHing
                with contextlib.suppress(RedisError, OSError):
                    await pipe.reset()
            held: set[str | None] = set()
            if unsent is not None and not isinstance(exc, WatchError):  # applied, or not?
                self._hold_unsettled(token_key, unsent, taken, pending, outbox_token)
                held = unsent
            if self.cluster and not owed:  # the shares of the models written are owed
                owed = self._owe(outbox_token, counts, written)
            gone = written | held | owed
            self._give_back(_without(taken, gone, global_too=None in held))
            self.pending.give_back(tuple(_drop(part, gone) for part in pending))
            self.pending.done(pending)
            log.warning(
                "flush failed (%s: %s); keeping %d models' data for the next try",
                type(exc).__name__,
                exc,
                len(touched - written),
            )
            return False
        self.pending.done(pending)
        await self._write_series()
        return True

    async def _guarded(self, token_key: str) -> Any:
        """A transaction that WATCHes ``token_key`` (which it sets last, :meth:`_execute`)."""
        pipe = self.client.pipeline(transaction=True)
        try:
            await pipe.watch(token_key)
        except BaseException:
            await pipe.reset()
            raise
        pipe.multi()
        return pipe

    async def _execute(self, pipe: Any, token_key: str) -> None:
        pipe.set(token_key, b"applied", ex=FLUSH_TOKEN_TTL_S)
        await pipe.execute()

    def _hold_unsettled(
        self,
        token_key: str,
        models: set[str | None],
        taken: tuple,
        pending: tuple,
        outbox_token: str = "",
    ) -> None:
        """Keep what an unanswered transaction carried (the parts of ``models``; ``None``: the
        counters no model owns) until :meth:`_settle` knows whether it was applied.  Its
        waiting predictions stay readable meanwhile (:meth:`load_pending`)."""
        parts = tuple(
            _only(part, models if i == 3 else models - {None}) for i, part in enumerate(taken)
        )
        held = tuple(_only(part, models - {None}) for part in pending)
        self.pending.track(held)
        cluster_model = None not in models  # its global share went to its outbox
        self.unsettled.append(
            _Unsettled(token_key, parts, held, outbox_token if cluster_model else "")
        )

    async def _settle(self) -> bool:
        """Whether each unanswered transaction was applied, oldest first: its token key is
        set if it was; if not, setting the key now (NX) makes its EXEC fail should it still
        arrive, and its data is buffered again.  False if Redis does not answer (kept)."""
        while self.unsettled:
            entry = self.unsettled[0]
            try:
                claimed = await self.client.set(
                    entry.token_key, b"aborted", nx=True, ex=FLUSH_TOKEN_TTL_S
                )
            except (RedisError, OSError) as exc:
                log.warning("cannot yet tell whether a flush was applied (%s)", exc)
                await self._reset_client()
                return False
            self.unsettled.pop(0)
            if claimed:
                self.settled["not applied"] += 1
                self._give_back(entry.taken)
                self.pending.give_back(entry.pending)
            else:
                self.settled["applied"] += 1
                for model_id in entry.taken[4]:  # its checkpoint's digests are not known here:
                    self._written.pop(model_id, None)  # the next write sends it whole
                if entry.outbox_token:  # a Cluster model's share of the global counters
                    self._owe(entry.outbox_token, entry.taken[3], set(entry.taken[3]))
            self.pending.done(entry.pending)
            log.warning(
                "a flush whose answer was lost was %s",
                "not applied: sending its data again" if claimed else "applied",
            )
        return True

    # -- a Cluster's global counters ------------------------------------------------------------
    def _owe(self, token: str, counts: dict, models: set) -> set:
        """Record the shares of ``models`` in ``counts`` (the global increments by model) as
        owed under ``token``; returns the models recorded."""
        shares = {m: share for m in models if (share := _nonzero(counts.get(m)))}
        if shares:
            self.owed.append(_Owed(token, shares))
        return set(shares)

    async def _pay_owed(self) -> None:
        """Add each owed flush's shares to the global counters, oldest first (each share once:
        :meth:`_add_shares`), then clear them from the outboxes (best effort: a share left
        there is marked applied, and skipped).  Raises what Redis raises (kept owed)."""
        while self.owed:
            token, shares = self.owed[0]
            await self._add_shares(token, shares)
            self.owed.pop(0)
            models = [m for m in shares if m is not None]
            if models:
                pipe = self.client.pipeline(transaction=False)
                for model_id in models:
                    pipe.hdel(self.keys.counters_outbox(model_id), token)
                with contextlib.suppress(RedisError, OSError):
                    await pipe.execute()

    async def _add_shares(self, token: str, shares: dict[str | None, dict[str, int]]) -> None:
        """Add to ``<prefix>:counters`` the shares not yet marked applied, and mark them: one
        script (:data:`_ADD_SHARES`), atomic on the counters' node, so a share is added once
        whoever adds it (the flush, its retry, or a worker that found it in a model's outbox)."""
        marks, args = [], [FLUSH_TOKEN_TTL_S]
        for model_id, share in shares.items():
            marks.append(self.keys.counters_share(token, model_id))
            args.append(len(share))
            for name, n in share.items():
                args += [name, n]
        await self.client.eval(_ADD_SHARES, 1 + len(marks), self.keys.counters(), *marks, *args)

    async def _pay_outbox(self, model_id: str) -> None:
        """The global shares a model's outbox still holds (a worker died between a flush's
        model transactions and its last step), added once each, then cleared."""
        outbox = self.keys.counters_outbox(model_id)
        for token, share in (await self.client.hgetall(outbox)).items():
            token = token.decode() if isinstance(token, bytes) else token
            await self._add_shares(token, {model_id: json.loads(share)})
            await self.client.hdel(outbox, token)

    def _write_model(
        self,
        pipe: Any,
        model_id: str,
        taken: tuple,
        pending: tuple,
        staged: dict[str, _StagedCheckpoint],
    ) -> None:
        """One model's buffered writes; every key is tagged ``{model_id}`` (one hash slot).
        The checkpoint's new field digests go to ``staged``, kept once the write succeeded."""
        metrics, labelled, model_counts, _, checkpoints, open_alarms = taken
        for window, snapshot in metrics.get(model_id, {}).items():
            key = self.keys.metrics(model_id, window)
            pipe.hset(key, mapping={k: _hash_value(v) for k, v in snapshot.items()})
            # a model that stops sending leaves no stale "last minute" behind
            pipe.expire(key, metrics_ttl(snapshot.get("window_s")))
        samples = labelled.get(model_id)
        if samples:
            key = self.keys.labelled(model_id)
            pipe.lpush(key, *samples)
            pipe.ltrim(key, 0, self.labelled_keep - 1)
        for name, n in model_counts.get(model_id, {}).items():
            pipe.hincrby(self.keys.model_counters(model_id), name, n)
        if model_id in checkpoints:
            staged[model_id] = self._write_checkpoint(pipe, model_id, checkpoints[model_id])
        if model_id in open_alarms:
            pipe.delete(self.keys.open_alarms(model_id))
            if open_alarms[model_id]:
                pipe.hset(self.keys.open_alarms(model_id), mapping=open_alarms[model_id])
        writes, deletes = pending
        self.pending.write(
            pipe,
            (
                {model_id: writes[model_id]} if model_id in writes else {},
                {model_id: deletes[model_id]} if model_id in deletes else {},
            ),
        )

    def _write_checkpoint(
        self, pipe: Any, model_id: str, fields: dict[str, str]
    ) -> _StagedCheckpoint:
        """The fields that changed since the last write Redis confirmed (all of them, over
        whatever the key held, when that is unknown)."""
        key = self.keys.checkpoint(model_id)
        new = checkpoint_parts.digests(fields)
        old = self._written.get(model_id)
        if old is None:
            pipe.delete(key)
            changed = fields
        else:
            names, gone = checkpoint_parts.changed(old, new)
            changed = {name: fields[name] for name in names}
            if gone:
                pipe.hdel(key, *gone)
        if changed:
            pipe.hset(key, mapping=changed)
        sent = sum(map(len, changed.values()))
        return _StagedCheckpoint(new, sent, sum(map(len, fields.values())) - sent)

    def _checkpoint_written(self, model_id: str, checkpoint: _StagedCheckpoint) -> None:
        self._written[model_id] = checkpoint.digests
        self.checkpoint_bytes["written"] += checkpoint.sent
        self.checkpoint_bytes["unchanged"] += checkpoint.unchanged

    def _write_global(self, pipe: Any, taken: tuple) -> None:
        """The keys no model owns: the set of models with metrics, and the global counters
        (the increments of the models written, and those no model owns)."""
        metrics, counts = taken[0], taken[3]
        if metrics:
            pipe.sadd(self.keys.models(), *metrics)
        total: Counter[str] = Counter()
        for part in counts.values():
            total.update(part)
        for name, n in total.items():
            if n:
                pipe.hincrby(self.keys.counters(), name, n)

    async def _write_series(self) -> None:
        """Dashboard points, capped per model; a failure loses only these points."""
        points, self._series = self._series, []
        if not points:
            return
        pipe = self.client.pipeline(transaction=False)
        for model_id, point in points:
            key = self.keys.series(model_id)
            pipe.xadd(key, {"p": point}, maxlen=self.series_keep, approximate=True)
            pipe.expire(key, SERIES_TTL_S)  # a model that went quiet leaves no series behind
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            log.info("dashboard series points dropped (%s)", exc)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _drop(part: dict, models: set[str]) -> dict:
    return {m: v for m, v in part.items() if m not in models} if models else part


def _only(part: dict, models: set) -> dict:
    return {m: v for m, v in part.items() if m in models}


def _without(taken: tuple, gone: set, global_too: bool = False) -> tuple:
    """The buffers taken for a flush, less the parts of the models in ``gone`` (written, held
    until settled, or their global share owed); the global counters, index 3, all gone if
    ``global_too`` (they went in the same transaction)."""
    return tuple({} if i == 3 and global_too else _drop(part, gone) for i, part in enumerate(taken))


#: KEYS: the global counters, then a mark per share; ARGV: the marks' TTL, then per share its
#: number of counters and their (name, increment) pairs.  Returns how many shares it added.
_ADD_SHARES = """
local at, added = 2, 0
for j = 2, #KEYS do
  local n = tonumber(ARGV[at])
  at = at + 1
  if redis.call('EXISTS', KEYS[j]) == 0 then
    for i = at, at + 2 * n - 1, 2 do
      redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
    end
    redis.call('SET', KEYS[j], 'applied', 'EX', ARGV[1])
    added = added + 1
  end
  at = at + 2 * n
end
return added
"""


def _nonzero(counts: dict[str, int] | None) -> dict[str, int]:
    return {name: n for name, n in (counts or {}).items() if n}


def _sample_json(sample: dict[str, Any]) -> str:
    """A labelled sample as compact JSON: orjson (a tenth of the standard library's time; the
    samples' numbers are finite, checked at decoding), the standard library for what orjson
    cannot write (an integer label beyond 64 bits), read back alike.  As text, not orjson's
    bytes: those keep the whole buffer orjson grew (8 KB for a 514-byte sample, orjson 3.13), so a
    second of samples held until the flush left the worker at 535-555 MB after 100k labels
    instead of 260-295.

    >>> _sample_json({"label": 2**70, "features": {"x": 0.5}})
    '{"label":1180591620717411303424,"features":{"x":0.5}}'
    """
    try:
        return orjson.dumps(sample).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(sample, separators=(",", ":"))
