"""A daemon thread fed from serving threads through a bounded queue that never blocks them.

Shadow scoring and online learning both take work from the serving path this way: ``offer``
returns at once (a full queue drops the item and counts it in ``skipped``), and the thread
hands each item to ``handle`` in order until :meth:`stop`.  ``handle`` must not raise: it
counts its own failures.

>>> seen = []
>>> worker = QueueThread(seen.append, "example")
>>> worker.offer(1), worker.offer(2)
(True, True)
>>> import time
>>> while len(seen) < 2:
...     time.sleep(0.01)
>>> worker.stop(); seen
[1, 2]
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any


class QueueThread:
    def __init__(
        self, handle: Callable[[Any], None], name: str, size: int = 10_000, start: bool = True
    ) -> None:
        self._handle = handle
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._stopped = threading.Event()
        self.skipped = 0  # items dropped because the queue was full
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        if start:
            self.thread.start()

    def offer(self, item: Any) -> bool:
        """Queue ``item`` for the thread; False (and counted) if the queue is full."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.skipped += 1
            return False
        return True

    def stop(self) -> None:
        """End the thread after the item in hand (queued ones are dropped); never blocks."""
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self._handle(item)
