"""The alarms topic, followed live: recent firing and resolved alarms per model, and every
new one handed to the page's subscribers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def alarm_view(event: dict[str, Any]) -> dict[str, Any] | None:
    """The fields the page needs from an alarm CloudEvent (None: not an alarm)."""
    data = event.get("data")
    if not isinstance(data, dict) or "model" not in data:
        return None
    signal = data.get("signal") or {}
    return {
        "id": event.get("id"),
        "time": event.get("time"),
        "status": data.get("status"),
        "model": data["model"],
        "model_version": data.get("model_version"),
        "signal": f"{signal.get('kind')}:{signal.get('name')}",
        "detector": data.get("detector"),
        "severity": data.get("severity"),
        "statistic": data.get("statistic"),
        "threshold": data.get("threshold"),
        "dedup_key": data.get("dedup_key"),
        "seen_at": None,
    }


class AlarmFeed:
    def __init__(self, bootstrap: list[str], topic: str, keep: int = 200) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.recent: dict[str, deque[dict[str, Any]]] = defaultdict(lambda: deque(maxlen=keep))
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event, look_back: int = 500) -> None:
        """Read the last ``look_back`` alarms of each partition, then follow the topic."""
        import time

        from aiokafka import AIOKafkaConsumer, TopicPartition

        from driftline.kafka_partitions import topic_partitions

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            # the topic may not exist yet (no worker ran): then its partition 0 is followed
            tps = await topic_partitions(consumer, self.topic) or [TopicPartition(self.topic, 0)]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, max(0, ends[tp] - look_back))
            self.ready.set()
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=300)
                for records in batch.values():
                    for record in records:
                        with contextlib.suppress(ValueError, TypeError):
                            view = alarm_view(json.loads(record.value))
                            if view is not None:
                                view["seen_at"] = time.time()
                                self.recent[view["model"]].append(view)
                                for listener in list(self.listeners):
                                    listener(view)
        finally:
            self.ready.set()
            await consumer.stop()
