"""Dead-letter records: the original bytes, untouched, with the reason in Kafka headers.

A record on ``<prefix>.deadletter`` has the same key and value bytes as the message that
failed, and these headers (all UTF-8):

| header                        | content                                                 |
|-------------------------------|---------------------------------------------------------|
| ``driftline.reason``          | a code from ``contracts.events.REASONS`` or ``processing_error`` |
| ``driftline.detail``          | a human-readable sentence                               |
| ``driftline.source.topic``    | topic the message came from                             |
| ``driftline.source.partition``| its partition                                           |
| ``driftline.source.offset``   | its offset                                              |
| ``driftline.worker``          | the worker that rejected it                             |

>>> h = deadletter_headers("wrong_type", "'features' must be an object", "t.inferences", 2, 41, "w1")
>>> h["driftline.reason"], h["driftline.source.offset"]
(b'wrong_type', b'41')
>>> read_headers(list(h.items()))["driftline.detail"]
"'features' must be an object"
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

PROCESSING_ERROR = "processing_error"  # a bug of ours, caught so the worker keeps going


def deadletter_headers(
    reason: str, detail: str, topic: str, partition: int, offset: int, worker: str
) -> dict[str, bytes]:
    return {
        "driftline.reason": reason.encode(),
        "driftline.detail": detail[:2000].encode(),
        "driftline.source.topic": topic.encode(),
        "driftline.source.partition": str(partition).encode(),
        "driftline.source.offset": str(offset).encode(),
        "driftline.worker": worker.encode(),
    }


def read_headers(
    headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None,
) -> dict[str, str]:
    """Kafka headers (as aiokafka or Faust give them) as a str -> str dict."""
    if headers is None:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {
        k: (v.decode("utf-8", "replace") if isinstance(v, bytes | bytearray) else str(v))
        for k, v in items
    }
