"""Producer helper for model servers: publish inference and label events (aiokafka, no Faust).

    async with EventProducer(settings) as producer:
        await producer.send_inference(event)
        await producer.send_label(label)
        await producer.send_inference_batch(events)   # one message, many events of one model
        await producer.send_inference_columns(events)  # the same, each field one column

Events are keyed by model id, so one model's predictions and labels share a partition number.
``send_*`` only enqueues (batched by aiokafka); ``flush()`` waits until the broker has them all.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from contracts.columnar import encode_columns
from contracts.envelopes import encode_envelope
from contracts.events import InferenceEvent, LabelEvent
from contracts.settings import Settings


class EventProducer:
    def __init__(self, settings: Settings, linger_ms: int = 5) -> None:
        self.settings = settings
        self.topics = settings.topics
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_list, linger_ms=linger_ms, acks="all"
        )
        self.sent = 0

    async def __aenter__(self) -> EventProducer:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.flush()
        await self._producer.stop()

    async def send_inference(self, event: InferenceEvent) -> None:
        await self.send_raw(self.topics.inferences, event.to_json(), event.model_id)

    async def send_label(self, label: LabelEvent) -> None:
        await self.send_raw(self.topics.labels, label.to_json(), label.model_id)

    async def send_inference_batch(self, events: Sequence[InferenceEvent]) -> None:
        """Events of one model as one batch envelope (see :mod:`contracts.envelopes`)."""
        await self.send_raw(self.topics.inferences, encode_envelope(events), events[0].model_id)

    async def send_inference_columns(self, events: Sequence[InferenceEvent]) -> None:
        """Events of one model with the same features as one columnar envelope (see
        :mod:`contracts.columnar`): the cheapest form for the worker to read."""
        await self.send_raw(self.topics.inferences, encode_columns(events), events[0].model_id)

    async def send_label_batch(self, labels: Sequence[LabelEvent]) -> None:
        await self.send_raw(self.topics.labels, encode_envelope(labels), labels[0].model_id)

    async def send_raw(self, topic: str, value: bytes, key: str | bytes | None) -> None:
        """Publish arbitrary bytes (tests use it for malformed events)."""
        if isinstance(key, str):
            key = key.encode()
        await self._producer.send(topic, value, key=key)
        self.sent += 1

    async def flush(self) -> None:
        await self._producer.flush()
