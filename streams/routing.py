"""Which partition owns a model, whatever partitioner its producer used.

A model's monitor (its windows, detectors and label join) lives in one worker: the one that
holds the model's *owner partition*, ``murmur2(model_id) % partitions``, the partition Kafka's
Java client and aiokafka choose for a message keyed by the model id.  Producers built on
librdkafka (kcat, confluent-kafka, Go and C clients) hash keys with CRC32 instead, and a producer
may key by something else or not at all; such a message can land on any partition.  The worker
that reads it forwards it, bytes and timestamp unchanged, to the owner partition of the same
topic, with an :data:`ORIGIN_HEADER` naming where it was first written, and commits it once the
copy is written.  The owner applies the copy under its origin's position, so a copy forwarded
twice (a crash between the forward and the commit) is recognised as a redelivery.

>>> owner_partition("model-a", 4)  # what aiokafka's and Java's default partitioners choose
3
>>> origin_header("t.inferences", 1, 41)
b't.inferences:1:41'
>>> parse_origin(b"t.inferences:1:41")
('t.inferences', 1, 41)
>>> parse_origin(b"nonsense") is None
True
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2

#: Kafka header on a forwarded copy: ``topic:partition:offset`` of the message as first written.
ORIGIN_HEADER = "driftline.origin"


def owner_partition(model_id: str, partitions: int) -> int:
    """The partition a Java/aiokafka producer picks for a message keyed by ``model_id``."""
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, not {partitions}")
    return (murmur2(model_id.encode()) & 0x7FFFFFFF) % partitions


def origin_header(topic: str, partition: int, offset: int) -> bytes:
    return f"{topic}:{partition}:{offset}".encode()


def parse_origin(value: bytes | str | None) -> tuple[str, int, int] | None:
    """``(topic, partition, offset)`` from an :data:`ORIGIN_HEADER`; None if absent or garbled."""
    if value is None:
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else value
    topic, _, rest = text.rpartition(":")
    topic, _, partition = topic.rpartition(":")
    if not topic or not partition.isdigit() or not rest.isdigit():
        return None
    return topic, int(partition), int(rest)
