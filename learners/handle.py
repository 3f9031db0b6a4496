"""``ModelHandle``: what a model server predicts through, hot-swapped as the champion moves.

The served model is one immutable :class:`ServedModel` behind a single attribute.  A prediction
reads that attribute once and uses that object to the end, so a swap (one assignment, atomic in
Python) never stops or breaks a prediction in flight.  All the slow work of an update (fetching
the blob, checking its SHA-256, building the model, a probe prediction) happens *before* the swap
and, in :meth:`follow`, in a worker thread: serving threads never wait for it.

Versions only move forward: an update is applied only if its ``generation`` (raised by every
champion move in the registry, rollbacks included) is above the one served.  :meth:`follow`
starts from the registry's champion, so a restarted server serves what the registry says, not
whatever it was built with.

Shadow: :meth:`set_shadow` gives the handle a candidate that scores the same requests beside the
champion in a background thread (bounded queue: under overload shadow scoring is skipped and
counted, never the serving).  :meth:`shadow_report` gives agreement and, for requests whose
labels were passed to :meth:`observe_label`, both models' accuracy.

Online learning: for an incremental (river) model, :meth:`learn_online` lets the served version
learn each label passed to :meth:`observe_label`, in a background thread, guarded by the version
as published (:mod:`learners.online_serving`).  Events keep naming the published version.

>>> import tempfile
>>> from learners.adapters.linear import LinearAdapter
>>> from learners.blobstore import LocalBlobStore
>>> from contracts.updates import ModelUpdate
>>> store = LocalBlobStore(tempfile.mkdtemp())
>>> def publish(model, generation):
...     blob = model.to_bytes()
...     return ModelUpdate("churn", f"v{generation}", model.digest(), store.put(blob), "linear", generation)
>>> handle = ModelHandle("churn", store)
>>> handle.apply(publish(LinearAdapter(["x"], [1.0]), 1))
True
>>> handle.predict({"x": 2.0})[:2]
('v1', '1')
>>> handle.apply(publish(LinearAdapter(["x"], [-1.0]), 2)), handle.predict({"x": 2.0})[:2]
(True, ('v2', '0'))
>>> handle.apply(publish(LinearAdapter(["x"], [5.0]), 1))    # an older generation: ignored
False
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from contracts.events import normalise_label
from contracts.updates import InvalidUpdate, ModelUpdate, decode_update
from learners.adapters.base import InvalidModel, ModelAdapter, adapter_from_bytes
from learners.background import QueueThread
from learners.blobstore import BlobStore, fetch_verified
from learners.online_serving import OnlineLearning

log = logging.getLogger(__name__)


class NoModelServing(RuntimeError):
    """predict() before any model was loaded (no champion registered yet)."""


@dataclass(frozen=True)
class ServedModel:
    version: str
    digest: str
    generation: int
    model: ModelAdapter


class ModelHandle:
    def __init__(self, model_id: str, blobs: BlobStore, served: ServedModel | None = None) -> None:
        self.model_id = model_id
        self.blobs = blobs
        self._served = served
        self._lock = threading.Lock()  # serialises appliers (not predictions)
        self.swaps = 0
        self.rejected = 0
        self.history: list[str] = [served.version] if served else []
        self.ready = asyncio.Event()
        self._shadow: _Shadow | None = None
        self._online: OnlineLearning | None = None
        #: names this server's shadow reports in the registry
        self.handle_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"

    # -- serving ------------------------------------------------------------------------------
    @property
    def served(self) -> ServedModel:
        served = self._served
        if served is None:
            raise NoModelServing(
                f"no model loaded for {self.model_id!r}: register a champion "
                f"(driftline models register {self.model_id} ...)"
            )
        return served

    @property
    def version(self) -> str:
        return self.served.version

    @property
    def generation(self) -> int:
        return self._served.generation if self._served else 0

    def predict(
        self, features: dict[str, float], request_id: str = ""
    ) -> tuple[str, Any, float | None]:
        """(version that answered, prediction, confidence or None for regression)."""
        served = self.served  # read once: the whole prediction uses this model
        model = served.model
        online = self._online
        if online is not None:
            base, learned = online.serving  # one read: a version and its own learning copy
            if base is served:  # else a swap is restarting it: the new champion answers
                model = learned
                online.remember(request_id, features)
        prediction, confidence = model.predict_one(features)
        shadow = self._shadow
        if shadow is not None:
            shadow.offer(request_id, features, prediction)
        return served.version, prediction, confidence

    # -- updates ------------------------------------------------------------------------------
    def load(self, update: ModelUpdate) -> ServedModel:
        """Fetch, verify and probe the model an update names (slow: not on a serving thread)."""
        if update.model_id != self.model_id:
            raise InvalidModel(f"it is for model {update.model_id!r}")
        blob = fetch_verified(self.blobs, update.uri, update.digest)
        model = adapter_from_bytes(update.adapter, blob)
        probe = np.zeros((1, len(model.feature_names)), dtype=np.float32)
        out = model.predict_proba(probe) if model.task != "regression" else model.predict(probe)
        if not np.all(np.isfinite(np.asarray(out, dtype=np.float64))):
            raise InvalidModel("probe prediction is not finite")
        return ServedModel(update.version, update.digest, update.generation, model)

    def swap(self, served: ServedModel) -> bool:
        """Serve ``served`` if it is newer than what serves now (one reference assignment)."""
        with self._lock:
            if served.generation <= self.generation:
                return False
            self._served = served
            self.swaps += 1
            self.history.append(served.version)
            if self._online is not None:
                self._restart_online(served)
        log.info(
            "model %s now serving %s (generation %d, %s)",
            self.model_id,
            served.version,
            served.generation,
            served.digest[:19],
        )
        return True

    def apply(self, update: ModelUpdate) -> bool:
        """Load and swap in this thread; return whether it swapped (refusals are logged)."""
        if update.generation <= self.generation or update.action == "shadow":
            return False
        served = self._load_or_refuse(update)
        return served is not None and self.swap(served)

    def _load_or_refuse(self, update: ModelUpdate) -> ServedModel | None:
        """:meth:`load`, with a refusal counted and logged instead of raised."""
        try:
            return self.load(update)
        except InvalidModel as exc:
            self.rejected += 1
            log.warning("model update %s for %s refused: %s", update.version, self.model_id, exc)
            return None

    async def apply_async(self, update: ModelUpdate) -> bool:
        """:meth:`apply` with the loading in a worker thread; the swap itself is instant."""
        if update.action == "shadow":
            return await self._start_shadow(update)
        if update.model_id != self.model_id or update.generation <= self.generation:
            return False
        served = await asyncio.to_thread(self._load_or_refuse, update)
        if served is None:
            return False
        if self._shadow is not None and self._shadow.served.digest == served.digest:
            self.clear_shadow()
        return self.swap(served)

    def start_from(self, registry) -> bool:
        """Serve the registry's champion (blocking: call it in a thread from async code)."""
        champion = registry.champion(self.model_id)
        if champion is None:
            log.warning(
                "no champion registered for %s: register one with "
                "`driftline models register %s <blob>`",
                self.model_id,
                self.model_id,
            )
            return False
        return self.apply(champion.to_update(registry.generation(self.model_id)))

    async def follow(
        self,
        bootstrap_servers: list[str] | str,
        topic: str,
        stop: asyncio.Event,
        registry=None,
        on_swap: Callable[[ModelUpdate], None] | None = None,
        report_every_s: float = 10.0,
    ) -> None:
        """Serve the registry's champion, then apply every update on ``topic`` until ``stop``.

        The consumer's position is pinned *before* the registry is read, so an update published
        in between is seen on the topic (and ignored if the registry read already had it).
        While a candidate scores in shadow or the model learns online, the reports go to the
        registry every ``report_every_s`` (:meth:`report_to`)."""
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="latest"
        )
        await consumer.start()
        try:
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=100)
            for tp in consumer.assignment():
                await consumer.position(tp)
            if registry is not None:
                await asyncio.to_thread(self.start_from, registry)
            self.ready.set()
            reported = time.monotonic()
            while not stop.is_set():
                if registry is not None and time.monotonic() - reported >= report_every_s:
                    reported = time.monotonic()
                    await asyncio.to_thread(self.report_to, registry)
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        await self._on_message(record.key, record.value, on_swap)
        finally:
            await consumer.stop()
            self.clear_shadow()

    async def _on_message(self, key: bytes | None, value: bytes | None, on_swap) -> None:
        if key is not None and key.decode(errors="replace") != self.model_id:
            return
        try:
            update = decode_update(value or b"")
        except InvalidUpdate as exc:
            self.rejected += 1
            log.warning("unreadable model update on %s: %s", self.model_id, exc)
            return
        if update.model_id != self.model_id:
            return
        if await self.apply_async(update) and on_swap is not None and update.action != "shadow":
            on_swap(update)

    # -- shadow -------------------------------------------------------------------------------
    async def _start_shadow(self, update: ModelUpdate) -> bool:
        try:
            served = await asyncio.to_thread(self.load, update)
        except InvalidModel as exc:
            log.warning("shadow candidate %s refused: %s", update.version, exc)
            return False
        self.set_shadow(served)
        return True

    def set_shadow(self, served: ServedModel) -> None:
        self.clear_shadow()
        self._shadow = _Shadow(served)
        log.info("model %s: %s scores in shadow", self.model_id, served.version)

    def clear_shadow(self) -> None:
        shadow, self._shadow = self._shadow, None
        if shadow is not None:
            shadow.stop()

    def observe_label(self, request_id: str, label: Any) -> None:
        """A request's true label: scores the shadow candidate, and is learned in online mode."""
        shadow = self._shadow
        if shadow is not None:
            shadow.label(request_id, label)
        online = self._online
        if online is not None:
            online.label(request_id, label)

    # -- online learning ------------------------------------------------------------------------
    def learn_online(self, **options: Any) -> OnlineLearning:
        """Let the served (incremental) model learn each label passed to :meth:`observe_label`,
        guarded by its published version (:mod:`learners.online_serving`; ``options`` go to
        :class:`~learners.online_serving.OnlineLearning`).  Raises ``InvalidModel`` for a model
        that cannot learn one row at a time."""
        with self._lock:
            online = OnlineLearning(self.served, **options)
            self.stop_online()
            self._online = online
        log.info("model %s: %s learns online where it serves", self.model_id, self.version)
        return online

    def stop_online(self) -> None:
        """Serve the published version again and stop learning."""
        online, self._online = self._online, None
        if online is not None:
            online.stop()

    def online_report(self) -> dict[str, Any] | None:
        online = self._online
        return None if online is None else online.report()

    def online_snapshot(self) -> ModelAdapter | None:
        """A copy of what online learning has learned (register it to let the gate judge it)."""
        online = self._online
        return None if online is None else online.snapshot()

    def _restart_online(self, served: ServedModel) -> None:
        try:
            self._online.restart(served)
        except InvalidModel as exc:
            log.warning(
                "model %s: online learning stopped at %s: %s", self.model_id, served.version, exc
            )
            self.stop_online()

    def shadow_report(self) -> dict[str, Any] | None:
        shadow = self._shadow
        return None if shadow is None else shadow.report()

    def report_to(self, registry) -> list[str]:
        """Write this handle's reports (``shadow`` while a candidate scores in shadow, ``online``
        while it learns online) to the registry under its id (``handle_id``: host and process),
        for operators (``driftline models show``).  A Redis error is logged, never raised into
        serving.  Returns the kinds written."""
        written = []
        for kind, report in (("shadow", self.shadow_report()), ("online", self.online_report())):
            if report is None:
                continue
            try:
                registry.record_handle_report(self.model_id, kind, self.handle_id, report)
            except Exception as exc:  # reporting must not break the server
                log.warning("%s report of %s not written: %s", kind, self.model_id, exc)
                continue
            written.append(kind)
        return written


class _Shadow:
    """A candidate scoring copies of live requests in its own thread."""

    def __init__(self, served: ServedModel, queue_size: int = 10_000, keep: int = 50_000) -> None:
        self.served = served
        self._pending: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self._keep = keep
        self._lock = threading.Lock()
        self.scored = self.agreed = self.failed = 0
        self.labelled = self.champion_correct = self.candidate_correct = 0
        self._requests = QueueThread(self._score, "shadow", queue_size)

    def offer(self, request_id: str, features: dict[str, float], served_prediction: Any) -> None:
        self._requests.offer((request_id, features, served_prediction))

    @property
    def skipped(self) -> int:
        """Requests not scored: dropped under overload, or the candidate failed on them."""
        return self._requests.skipped + self.failed

    def _score(self, item: tuple[str, dict[str, float], Any]) -> None:
        request_id, features, served_prediction = item
        try:
            prediction, _ = self.served.model.predict_one(features)
        except Exception:  # a bad request must not kill the shadow thread
            self.failed += 1
            return
        with self._lock:
            self.scored += 1
            self.agreed += _same(prediction, served_prediction)
            if request_id:
                self._pending[request_id] = (served_prediction, prediction)
                while len(self._pending) > self._keep:
                    self._pending.popitem(last=False)

    def label(self, request_id: str, label: Any) -> None:
        with self._lock:
            pair = self._pending.pop(request_id, None)
            if pair is None:
                return
            self.labelled += 1
            self.champion_correct += _same(pair[0], label)
            self.candidate_correct += _same(pair[1], label)

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {
                "version": self.served.version,
                "scored": self.scored,
                "skipped": self.skipped,
                "agreement": self.agreed / self.scored if self.scored else None,
                "labelled": self.labelled,
                "champion_accuracy": self.champion_correct / self.labelled
                if self.labelled
                else None,
                "candidate_accuracy": self.candidate_correct / self.labelled
                if self.labelled
                else None,
            }

    def stop(self) -> None:
        self._requests.stop()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6)
    return normalise_label(a) == normalise_label(b)
