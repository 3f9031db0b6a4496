"""``ModelHandle``: what a model server predicts through, hot-swapped on model updates.

The served model is one immutable :class:`ServedModel` behind a single attribute.  A prediction
reads that attribute once and uses that object to the end, so a swap (one assignment, atomic in
Python) never stops or breaks a prediction in flight: predictions that began before it finish on
the old model, later ones use the new.  An update is validated (model id, digest, finite weights,
a finite probe prediction) before the swap; a bad one is counted and ignored.

>>> from learners.model import LinearModel
>>> from learners.updates import ModelUpdate
>>> handle = ModelHandle("churn", LinearModel({"x": 1.0}), version="v1")
>>> handle.predict({"x": 2.0})[0]
'v1'
>>> handle.apply(ModelUpdate.for_model("churn", "v2", LinearModel({"x": -1.0})))
True
>>> handle.predict({"x": 2.0})[0], handle.swaps
('v2', 1)
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from learners.model import InvalidModel, LinearModel
from learners.updates import ModelUpdate, decode_update

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    version: str
    digest: str
    model: LinearModel


class ModelHandle:
    def __init__(self, model_id: str, model: LinearModel, version: str = "v1") -> None:
        self.model_id = model_id
        self._served = ServedModel(version, model.digest(), model)
        self.swaps = 0
        self.rejected = 0
        self.history: list[str] = [version]
        self.ready = asyncio.Event()

    @property
    def served(self) -> ServedModel:
        return self._served

    @property
    def version(self) -> str:
        return self._served.version

    def predict(self, features: dict[str, float]) -> tuple[str, float]:
        """(version that answered, probability of the positive class)."""
        served = self._served  # read once: the whole prediction uses this model
        return served.version, served.model.predict_proba(features)

    def apply(self, update: ModelUpdate) -> bool:
        """Swap to ``update`` if it is valid for this handle; return whether it swapped."""
        reason = self._refuse(update)
        if reason:
            self.rejected += 1
            log.warning(
                "model update %s for %s refused: %s", update.version, update.model_id, reason
            )
            return False
        self._served = ServedModel(update.version, update.digest, update.model)
        self.swaps += 1
        self.history.append(update.version)
        log.info("model %s now serving %s (%s)", self.model_id, update.version, update.digest[:19])
        return True

    def _refuse(self, update: ModelUpdate) -> str:
        if update.model_id != self.model_id:
            return f"it is for model {update.model_id!r}"
        if update.digest == self._served.digest:
            return "already serving this content"
        if update.model.digest() != update.digest:
            return "digest does not match content"
        probe = {name: 1.0 for name in update.model.weights}
        if not math.isfinite(update.model.predict_proba(probe)):
            return "probe prediction is not finite"
        return ""

    async def follow(
        self,
        bootstrap_servers: list[str] | str,
        topic: str,
        stop: asyncio.Event,
        on_swap: Callable[[ModelUpdate], None] | None = None,
    ) -> None:
        """Apply every update published to ``topic`` from now on, until ``stop`` is set."""
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="latest"
        )
        await consumer.start()
        try:
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=100)
            for tp in consumer.assignment():
                await consumer.position(tp)  # pin "latest" now, before saying ready
            self.ready.set()
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        self._on_message(record.key, record.value, on_swap)
        finally:
            await consumer.stop()

    def _on_message(self, key: bytes | None, value: bytes, on_swap) -> None:
        if key is not None and key.decode(errors="replace") != self.model_id:
            return
        try:
            update = decode_update(value)
        except InvalidModel as exc:
            self.rejected += 1
            log.warning("unreadable model update on %s: %s", self.model_id, exc)
            return
        if self.apply(update) and on_swap is not None:
            on_swap(update)
