"""Create driftline's topics if they are missing (aiokafka admin; no Faust).

Inference and label topics must be co-partitioned (same partition count, both keyed by model id)
so that a model's predictions and labels reach the same worker; both are created with
``Settings.partitions``.  Faust does not create source topics itself and does not notice topics
created after it subscribed, so ``driftline worker`` calls :func:`ensure_topics` first.
"""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from contracts.settings import Settings

log = logging.getLogger(__name__)


def topic_names(settings: Settings) -> list[str]:
    t = settings.topics
    return [t.inferences, t.labels, t.alarms, t.model_updates, t.deadletter, t.alarms_retry]


async def ensure_topics(settings: Settings, replication_factor: int = 1) -> list[str]:
    """Create any missing driftline topic; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_list)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in topic_names(settings) if name not in existing]
        if missing:
            new = [NewTopic(name, settings.partitions, replication_factor) for name in missing]
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                await admin.create_topics(new)
            log.info("created topics %s", ", ".join(missing))
        return missing
    finally:
        await admin.close()
