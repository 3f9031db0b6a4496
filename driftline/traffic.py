"""A model server's traffic, as the demo and the end-to-end tests play it.

Each request is predicted through a :class:`~learners.handle.ModelHandle` (so the version that
answered is the one reported), published as an inference event, and its ground truth follows
``label_delay_s`` later as a label event, the way labels trickle in from the real world.

    async with EventProducer(settings) as producer:
        traffic = Traffic(producer, "churn", label_delay_s=1.0)
        version, correct = await traffic.serve(handle, features, truth)
        await traffic.drain()
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque

from contracts.events import InferenceEvent, LabelEvent
from learners.handle import ModelHandle
from streams.producer import EventProducer


class Traffic:
    def __init__(
        self, producer: EventProducer, model_id: str, label_delay_s: float = 1.0, run_id: str = ""
    ) -> None:
        self.producer, self.model_id, self.label_delay_s = producer, model_id, label_delay_s
        self._labels: deque[tuple[float, LabelEvent]] = deque()
        self._ids = itertools.count()
        self.run_id = run_id or f"{time.time():.0f}"
        self.served: dict[str, int] = {}

    async def serve(
        self,
        handle: ModelHandle,
        features: dict[str, float],
        truth: str | float,
        latency_ms: float | None = None,
    ) -> tuple[str, bool]:
        """Predict, publish the event, schedule the label; (version, whether it was right:
        the class, or for a regressor an absolute error under 0.5)."""
        request_id = f"{self.model_id}-{self.run_id}-{next(self._ids)}"
        version, prediction, confidence = handle.predict(features, request_id=request_id)
        regression = handle.served.model.task == "regression"
        now = time.time()
        await self.producer.send_inference(
            InferenceEvent(
                self.model_id,
                version,
                request_id,
                now,
                features,
                prediction,
                score=confidence,
                latency_ms=latency_ms,
                task="regression" if regression else None,
            )
        )
        due = now + self.label_delay_s
        self._labels.append((due, LabelEvent(self.model_id, request_id, truth, due)))
        self.served[version] = self.served.get(version, 0) + 1
        await self._send_due(now, handle)
        if regression:
            return version, abs(prediction - float(truth)) < 0.5
        return version, prediction == truth

    async def _send_due(self, now: float, handle: ModelHandle | None = None) -> None:
        while self._labels and self._labels[0][0] <= now:
            label = self._labels.popleft()[1]
            await self.producer.send_label(label)
            if handle is not None:
                handle.observe_label(label.request_id, label.label)

    async def drain(self) -> None:
        """Send every pending label on its schedule."""
        while self._labels:
            await asyncio.sleep(max(0.0, self._labels[0][0] - time.time()))
            await self._send_due(time.time())
