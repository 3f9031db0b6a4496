"""The partitions of a topic, for the command-line tools and the dashboard that read topics
without joining a consumer group."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """``topic``'s partitions, in order; ``[]`` when the topic does not exist.  The consumer's
    metadata is refreshed first if it has not seen the topic yet (a fresh consumer has not)."""
    partitions = consumer.partitions_for_topic(topic)
    if partitions is None:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic)
    return [TopicPartition(topic, p) for p in sorted(partitions or ())]
