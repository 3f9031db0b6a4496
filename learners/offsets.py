"""Which alarm offsets the learner may commit: none past an update that has not finished.

An alarm that starts an update stays *in flight* until the update is decided (promoted,
rejected, rolled back or given up).  The committable offset of a partition is the lowest offset
still in flight, or one past the highest offset seen when nothing is: a crash mid-update makes
Kafka deliver that alarm again, so the update is redone rather than lost.

>>> tracker = OffsetTracker()
>>> tracker.seen("alarms", 0, 5); tracker.start("alarms", 0, 6); tracker.seen("alarms", 0, 7)
>>> tracker.committable()
{('alarms', 0): 6}
>>> tracker.finish("alarms", 0, 6)
>>> tracker.committable()
{('alarms', 0): 8}
"""

from __future__ import annotations

from collections import defaultdict

TopicPartition = tuple[str, int]


class OffsetTracker:
    def __init__(self) -> None:
        self._next: dict[TopicPartition, int] = {}
        self._in_flight: dict[TopicPartition, set[int]] = defaultdict(set)
        self._committed: dict[TopicPartition, int] = {}

    def seen(self, topic: str, partition: int, offset: int) -> None:
        """An alarm handled at once (skipped, or its update already decided)."""
        tp = (topic, partition)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def start(self, topic: str, partition: int, offset: int) -> None:
        self.seen(topic, partition, offset)
        self._in_flight[(topic, partition)].add(offset)

    def finish(self, topic: str, partition: int, offset: int) -> None:
        self._in_flight[(topic, partition)].discard(offset)

    def committable(self) -> dict[TopicPartition, int]:
        out = {}
        for tp, next_offset in self._next.items():
            flying = self._in_flight.get(tp)
            out[tp] = min(flying) if flying else next_offset
        return out

    def to_commit(self) -> dict[TopicPartition, int]:
        """What changed since the last call (and mark it committed)."""
        changed = {tp: o for tp, o in self.committable().items() if self._committed.get(tp) != o}
        self._committed.update(changed)
        return changed

    def in_flight(self) -> int:
        return sum(len(s) for s in self._in_flight.values())
