"""Create driftline's topics if they are missing (aiokafka admin; no Faust).

Inference and label topics must be co-partitioned (same partition count, both keyed by model id)
so that a model's predictions and labels reach the same worker; both are created with
``Settings.partitions``.  Faust does not create source topics itself and does not notice topics
created after it subscribed, so ``driftline worker`` calls :func:`ensure_topics` first.
"""

from __future__ import annotations

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
        if not missing:
            return []
        new = [NewTopic(name, settings.partitions, replication_factor) for name in missing]
        response = await admin.create_topics(new)
        created = []
        for name, code, *message in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code != TopicAlreadyExistsError.errno:  # another process won the race: fine
                text = message[0] if message and message[0] else f"error code {code}"
                raise RuntimeError(f"Kafka refused to create topic {name}: {text}")
        if created:
            log.info("created topics %s", ", ".join(created))
        return created
    finally:
        await admin.close()


async def drop_topics(settings: Settings, name_prefix: str) -> list[str]:
    """Delete every topic whose name starts with ``name_prefix``; return the names deleted.

    For tests and benchmarks that create topics of their own: a broker that keeps thousands of
    leftover partitions takes minutes to load its logs at start-up.
    """
    if not name_prefix:
        raise ValueError("drop_topics needs a non-empty name prefix")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_list)
    await admin.start()
    try:
        doomed = [name for name in await admin.list_topics() if name.startswith(name_prefix)]
        if doomed:
            await admin.delete_topics(doomed)
            log.info("deleted topics %s", ", ".join(doomed))
        return doomed
    finally:
        await admin.close()


async def partition_count(settings: Settings, topic: str) -> int | None:
    """How many partitions ``topic`` has now; None if the broker does not know it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_list)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        if described.get("error_code") or not described.get("partitions"):
            return None
        return len(described["partitions"])
    finally:
        await admin.close()
