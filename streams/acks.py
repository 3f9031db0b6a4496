"""Acknowledge messages only after the Redis write that holds their effects (no Faust import).

Kafka offsets are committed for acknowledged messages.  Acknowledged the moment they are
processed, a crash between the commit and the next Redis flush would lose their counts and
windows; and while Redis is down, offsets would keep moving while nothing is stored.
:class:`AckAfterFlush` holds each processed message until a flush that includes its effects has
succeeded, then acknowledges it.  Too many held messages (Redis down or slow) make
:meth:`~AckAfterFlush.hold` wait, so the worker stops consuming instead of buffering without
bound; it resumes when Redis answers.

>>> import asyncio
>>> class Message:
...     acked = False
...     def ack(self):
...         self.acked = True
>>> answers = [False, True]                       # Redis fails once, then answers
>>> async def flush():
...     return answers.pop(0)
>>> gate = AckAfterFlush(flush, max_held=10)
>>> messages = [Message() for _ in range(3)]
>>> async def run():
...     await gate.hold(messages)
...     first = await gate.flush()                   # failed: nothing acknowledged
...     acked_after_first = any(m.acked for m in messages)
...     second = await gate.flush()
...     return first, acked_after_first, second, all(m.acked for m in messages)
>>> asyncio.run(run())
(False, False, True, True)
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

log = logging.getLogger(__name__)


class Ackable(Protocol):
    def ack(self) -> object: ...


class AckAfterFlush:
    def __init__(
        self,
        flush: Callable[[], Awaitable[bool]],
        max_held: int,
        retry_s: float = 1.0,
        max_retry_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_held < 1:
            raise ValueError("max_held must be >= 1")
        self._flush = flush
        self.max_held = max_held
        self.retry_s, self.max_retry_s = retry_s, max_retry_s
        self._clock = clock
        self.last_took_s = 0.0  # how long the last flush took
        self._last_end = -math.inf
        self._held: list[Ackable] = []
        self._lock = asyncio.Lock()
        self.failed = 0  # flushes that failed (their messages stayed held)

    @property
    def held(self) -> int:
        return len(self._held)

    def rested(self, share: float) -> bool:
        """Whether a timed flush may run now without flushes taking more than ``share`` of
        the time: the time since the last flush ended is at least ``(1 - share) / share``
        times what it took.  A worker with many changed models flushes less often instead of
        doing little else (a flush writes every changed model whole).

        >>> async def slow():
        ...     return True
        >>> now = [0.0]
        >>> gate = AckAfterFlush(slow, max_held=10, clock=lambda: now[0])
        >>> gate.rested(0.25)
        True
        >>> _ = asyncio.run(gate.flush()); gate.last_took_s = 2.0   # a flush of 2 s ...
        >>> now[0] = 5.0; gate.rested(0.25)                          # ... rests 6 s
        False
        >>> now[0] = 6.0; gate.rested(0.25)
        True
        """
        return self._clock() - self._last_end >= self.last_took_s * (1 - share) / share

    async def hold(self, messages: Sequence[Ackable]) -> None:
        """Keep ``messages`` (already processed) until a flush succeeds; wait while too many
        are held (Redis down or slow): consuming stops until a flush gets through."""
        self._held.extend(messages)
        delay = self.retry_s
        while len(self._held) > self.max_held:
            if await self.flush():
                return
            log.warning(
                "Redis flush failed: holding %d processed messages, consumption paused; "
                "retrying in %.0fs",
                len(self._held),
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_retry_s)

    async def flush(self) -> bool:
        """Flush; acknowledge what was held when it started if it succeeded."""
        async with self._lock:
            # Taken before the flush awaits anything: every message held now has its effects
            # in what this flush writes; later ones wait for the next flush.
            taken, self._held = self._held, []
            started = self._clock()
            ok = await self._flush()
            self._last_end = self._clock()
            self.last_took_s = self._last_end - started
            if ok:
                for message in taken:
                    message.ack()
            else:
                self.failed += 1
                self._held[:0] = taken
            return ok
