"""System monitor: a drop in event throughput, from event timestamps."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detectors.base import DriftDetector
from detectors.cusum import CUSUM


class ThroughputDrop(DriftDetector):
    """Counts events per ``bucket_s`` of event time and watches the counts with a CUSUM.

    Inputs are event timestamps in seconds.  When an event opens a new bucket, the closed
    bucket's count (and a zero for each empty bucket in between, at most ``max_gap`` of them)
    goes to a downward :class:`~detectors.CUSUM` calibrated on the first ``reference_size``
    buckets, so "normal" is learnt from the traffic itself.  A late event (earlier than the
    open bucket) is counted in the open bucket.  A total outage shows only when events resume:
    detecting silence needs a clock, which the stream worker's timer provides, not this class.

    Parameters:
        bucket_s: Width of a counting bucket, in seconds.
        reference_size: Buckets used to learn normal throughput (at least 64).
        target_arl: Buckets between false alarms.
        max_gap: Empty buckets filled in at most after a silence.

    Examples:
        >>> import random
        >>> from detectors import ThroughputDrop
        >>> rng = random.Random(2)
        >>> t, times = 0.0, []
        >>> for i in range(20000):
        ...     t += rng.expovariate(50.0 if i < 15000 else 20.0)  # 50 events/s, then 20
        ...     times.append(t)
        >>> detector = ThroughputDrop()
        >>> alarms = detector.update_many(times).tolist()
        >>> len(alarms), 15000 < alarms[0] < 15100
        (1, True)
    """

    name = "throughput_drop"
    input_kind = "event_time"
    _state_fields = ("_bucket", "_count", "_counter")

    def __init__(
        self,
        bucket_s: float = 1.0,
        reference_size: int = 120,
        target_arl: float = 100_000.0,
        max_gap: int = 3600,
    ) -> None:
        if bucket_s <= 0 or max_gap < 1:
            raise ValueError("need bucket_s > 0 and max_gap >= 1")
        self.bucket_s = bucket_s
        self.reference_size = reference_size
        self.target_arl = target_arl
        self.max_gap = max_gap
        self._make_counter()  # validates reference_size and target_arl
        super().__init__()

    def _make_counter(self) -> CUSUM:
        return CUSUM(
            shifts=(1.0, 3.0),
            target_arl=self.target_arl,
            reference_size=self.reference_size,
            detect_scale=False,
            sides="down",
        )

    @property
    def statistic(self) -> float:
        return self._counter.statistic

    @property
    def threshold(self) -> float:
        return self._counter.threshold

    def _reset(self) -> None:
        self._bucket: int | None = None
        self._count = 0
        self._counter = self._make_counter()

    def _update(self, x: float) -> bool:
        bucket = math.floor(x / self.bucket_s)
        if self._bucket is None:
            self._bucket = bucket
        if bucket <= self._bucket:
            self._count += 1
            return False
        closed = [float(self._count)] + [0.0] * min(bucket - self._bucket - 1, self.max_gap)
        self._bucket, self._count = bucket, 1
        return len(self._counter.update_many(closed)) > 0

    def update_until_alarm(self, values: Any) -> int:
        """Vectorised: events that stay in the current second are counted at once; only an
        event that opens a new bucket feeds the counter."""
        times = self._batch(values)
        if not np.isfinite(times).all():  # values to reject: the one-by-one path counts them
            return super().update_until_alarm(times)
        n = len(times)
        if n == 0:
            return 0
        buckets = np.floor(times / self.bucket_s)
        if self._bucket is None:
            self._bucket = int(buckets[0])
        newest = np.maximum.accumulate(np.concatenate([[float(self._bucket)], buckets]))
        done = 0
        for position in np.flatnonzero(buckets > newest[:-1]).tolist():
            self._count += position - done
            bucket = int(buckets[position])
            closed = [float(self._count)] + [0.0] * min(bucket - self._bucket - 1, self.max_gap)
            self._bucket, self._count = bucket, 1
            done = position + 1
            if len(self._counter.update_many(closed)):
                self.n_seen += done
                self.n_detections += 1
                self._drift_detected = True
                return done
        self._count += n - done
        self.n_seen += n
        self._drift_detected = False
        return n

    @classmethod
    def _unit_test_params(cls) -> dict[str, Any]:
        return {"bucket_s": 2.0, "reference_size": 64, "target_arl": 20_000.0, "max_gap": 10}
