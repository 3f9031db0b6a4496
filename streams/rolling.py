"""Rolling, event-time windowed model metrics in fixed memory.

A :class:`WindowedMetrics` keeps a ring of time buckets (``bucket_s`` wide) covering ``window_s``
seconds before the newest event time seen.  Each bucket holds counts (events, labelled outcomes,
true/false positives/negatives, correct predictions) and a log-spaced latency histogram, so
buckets merge by addition and the window's state never grows with traffic.

Attribution rule: an inference counts in the bucket of its own event time; a labelled outcome
counts in the bucket of its label's event time (the moment the outcome became known).  An
accuracy "over the last minute" is therefore the accuracy of outcomes learned in the last
minute, which stays meaningful when labels arrive minutes after predictions.  Records older than
the window are counted in ``too_late`` and otherwise ignored.

Latency quantiles are read from the histogram: 100 bins per decade from 0.01 ms to 10^6 ms,
so a quantile is within about 2.3% of the exact value.

>>> m = WindowedMetrics(window_s=60, bucket_s=1)
>>> for i in range(10):
...     m.add_inference(event_time=1000.0 + i, latency_ms=10.0 * (i + 1))
>>> m.add_outcome(event_time=1009.0, predicted_positive=True, actual_positive=True, correct=True)
>>> m.add_outcome(event_time=1009.0, predicted_positive=True, actual_positive=False, correct=False)
>>> snap = m.snapshot()
>>> snap["events"], snap["labelled"], snap["accuracy"], snap["precision"]
(10, 2, 0.5, 0.5)
>>> round(snap["latency_p50_ms"])
50
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contracts.metrics import json_metric
from streams.scores import ScoreRun, ScoreStats
from streams.tally import Tally, added

Probabilities = tuple[float | None, float | None, float | None]  # P(positive), p(true), confidence

_LAT_MIN_MS = 0.01
_LAT_BINS_PER_DECADE = 100
_LAT_DECADES = 8
_LAT_BINS = _LAT_BINS_PER_DECADE * _LAT_DECADES


def _latency_bin(ms: float) -> int:
    if ms <= _LAT_MIN_MS:
        return 0
    b = int(math.log10(ms / _LAT_MIN_MS) * _LAT_BINS_PER_DECADE)
    return min(b, _LAT_BINS - 1)


_FEW = 16  # add_inferences: below this many events, one by one


def _latency_bins(latencies: Sequence[float | None]) -> np.ndarray:
    """:func:`_latency_bin` of each latency, vectorised; -1 where there is none."""
    ms = np.array([-1.0 if v is None else v for v in latencies], dtype=np.float64)
    given = ms >= 0
    with np.errstate(divide="ignore"):
        raw = np.log10(np.maximum(ms, _LAT_MIN_MS) / _LAT_MIN_MS) * _LAT_BINS_PER_DECADE
    bins = np.minimum(raw.astype(np.int64), _LAT_BINS - 1)
    bins[ms <= _LAT_MIN_MS] = 0
    bins[~given] = -1
    return bins


def _bin_value(b: int) -> float:
    """Geometric centre of latency bin ``b``."""
    return _LAT_MIN_MS * 10 ** ((b + 0.5) / _LAT_BINS_PER_DECADE)


#: a bucket's counts and sums, added up when buckets merge
_COUNTS = (
    "events", "labelled", "correct", "tp", "fp", "fn", "tn", "regressed", "abs_error",
    "sq_error", "sum_y", "sum_y2", "incomplete", "checked", "outside",
)  # fmt: skip


@dataclass(slots=True)
class _Bucket:
    start: int = -1  # bucket number (event_time // bucket_s); -1 = empty
    events: int = 0
    labelled: int = 0
    correct: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    regressed: int = 0  # labelled regression outcomes
    abs_error: float = 0.0
    sq_error: float = 0.0
    sum_y: float = 0.0  # regression labels, for R²
    sum_y2: float = 0.0
    confusion: dict[tuple[str, str], int] = field(default_factory=dict)  # (actual, predicted)
    latencies: Tally = field(default_factory=Tally)  # latency bin -> count
    scores: ScoreStats | None = None  # probability quality, once an outcome brings one
    incomplete: int = 0  # inferences missing a feature of the model's layout
    checked: int = 0  # feature values compared with their reference range (streams.ranges)
    outside: int = 0  # ... and found outside it

    def clear(self, start: int) -> None:
        self.start = start
        self.events = self.labelled = self.correct = 0
        self.tp = self.fp = self.fn = self.tn = 0
        self.regressed = 0
        self.abs_error = self.sq_error = 0.0
        self.sum_y = self.sum_y2 = 0.0
        self.confusion = {}
        self.latencies = Tally()
        self.scores = None
        self.incomplete = 0
        self.checked = self.outside = 0

    def merge(self, other: _Bucket) -> None:
        """Add ``other``'s counts and sums (a narrower bucket within this one)."""
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for cell, n in other.confusion.items():
            self.confusion[cell] = self.confusion.get(cell, 0) + n
        self.latencies.add_many(other.latencies.items())
        if other.scores is not None:
            if self.scores is None:
                self.scores = ScoreStats()
            self.scores.merge(other.scores)

    def freeze(self) -> None:
        """Pack the histograms (a bucket that is no longer the newest rarely changes)."""
        self.latencies.freeze()
        if self.scores is not None:
            self.scores.freeze()


class Outcomes:
    """A batch's labelled classification outcomes, in arrival order, for
    :meth:`WindowedMetrics.add_outcomes`.  What a run of them adds to a bucket is worked out
    once (:class:`OutcomeRun`) for every window that counts that run in one bucket: usually
    the whole batch, in each of a model's windows.

    >>> batch = Outcomes()
    >>> batch.append(10.0, True, True, True, "1", "1", None)
    >>> batch.append(11.0, True, False, False, "1", "0", None)
    >>> run = batch.run([0, 1])
    >>> run.labelled, run.correct, run.tp, run.fp, dict(run.cells)
    (2, 1, 1, 1, {('1', '1'): 1, ('0', '1'): 1})
    """

    def __init__(self) -> None:
        #: each outcome's arguments to :meth:`WindowedMetrics.add_outcome`, in order
        self.rows: list[tuple] = []
        self._runs: dict[tuple, OutcomeRun] = {}

    def append(self, *outcome: Any) -> None:
        """One outcome: :meth:`WindowedMetrics.add_outcome`'s arguments, in its order."""
        self.rows.append(outcome)
        self._runs.clear()

    def __len__(self) -> int:
        return len(self.rows)

    def clear(self) -> None:
        self.rows.clear()
        self._runs.clear()

    def run(self, positions: list[int]) -> OutcomeRun:
        """What the outcomes at ``positions`` (ascending) add to one bucket (worked out once)."""
        contiguous = positions[-1] - positions[0] + 1 == len(positions)
        key = (positions[0], len(positions)) if contiguous else tuple(positions)
        found = self._runs.get(key)
        if found is None:
            found = self._runs[key] = OutcomeRun([self.rows[i] for i in positions])
        return found


class OutcomeRun:
    """What a run of outcomes adds to a bucket: counts, the confusion cells (first seen first),
    and the probabilities' part (:class:`~streams.scores.ScoreRun`; None if none had any)."""

    __slots__ = ("cells", "correct", "fn", "fp", "labelled", "pairs", "scores", "tn", "tp")

    def __init__(self, rows: list[tuple]) -> None:
        self.labelled = len(rows)
        self.correct = self.tp = self.fp = self.fn = self.tn = 0
        #: (actual, predicted) of the outcomes with both, in order; and counted by cell
        self.pairs: list[tuple[str, str]] = []
        scored = []
        for _, predicted_positive, actual_positive, correct, predicted, actual, probs in rows:
            self.correct += correct
            if predicted_positive and actual_positive:
                self.tp += 1
            elif predicted_positive:
                self.fp += 1
            elif actual_positive:
                self.fn += 1
            else:
                self.tn += 1
            if predicted is not None and actual is not None:
                self.pairs.append((actual, predicted))
            if probs is not None:
                p_positive, p_true, confidence = probs
                scored.append((p_positive, actual_positive, p_true, confidence, correct))
        self.cells = Counter(self.pairs)
        self.scores = ScoreRun(scored) if scored else None


class WindowedMetrics:
    """Accuracy, precision, recall, F1, event rate and latency quantiles over one window."""

    def __init__(self, window_s: float, bucket_s: float) -> None:
        if window_s <= 0 or bucket_s <= 0 or window_s < bucket_s:
            raise ValueError("need window_s >= bucket_s > 0")
        self.window_s = window_s
        self.bucket_s = bucket_s
        self.n_buckets = math.ceil(window_s / bucket_s)
        self._ring = [_Bucket() for _ in range(self.n_buckets)]
        self.newest = -math.inf  # newest event time seen
        self.oldest = math.inf  # oldest event time still in the window (for young streams)
        self.too_late = 0
        # one (actual, predicted) key object per confusion cell for all the buckets (each kept
        # its own: 36 buckets x 4 cells x 56 bytes of tuples per binary model)
        self._cells: dict[tuple[str, str], tuple[str, str]] = {}

    def _bucket(self, event_time: float) -> _Bucket | None:
        if event_time > self.newest:
            self.newest = event_time
        number = int(event_time // self.bucket_s)
        newest_number = int(self.newest // self.bucket_s)
        if number <= newest_number - self.n_buckets:
            self.too_late += 1
            return None
        self.oldest = min(self.oldest, event_time)
        bucket = self._ring[number % self.n_buckets]
        if bucket.start != number:
            bucket.clear(number)
        return bucket

    def _admit(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """A batch's times (in arrival order): each one's bucket number, and whether it is in
        the window against the newest time seen up to and including it, as one by one
        (:meth:`_bucket`); ``newest``, ``too_late`` and ``oldest`` moved.  None if none is."""
        newest = np.maximum.accumulate(np.maximum(t, self.newest))
        numbers = np.floor_divide(t, self.bucket_s).astype(np.int64)
        kept = numbers > np.floor_divide(newest, self.bucket_s).astype(np.int64) - self.n_buckets
        self.newest = float(newest[-1])
        self.too_late += len(t) - int(np.count_nonzero(kept))
        if not kept.any():
            return None
        self.oldest = min(self.oldest, float(t[kept].min()))
        return numbers, kept

    def add_inference(
        self,
        event_time: float,
        latency_ms: float | None = None,
        incomplete: bool = False,
        ranged: tuple[int, int] = (0, 0),
    ) -> None:
        """An inference; ``incomplete``: it lacked a feature of the model's layout; ``ranged``:
        (feature values checked against their reference range, values outside it)."""
        bucket = self._bucket(event_time)
        if bucket is None:
            return
        bucket.events += 1
        bucket.incomplete += incomplete
        bucket.checked += ranged[0]
        bucket.outside += ranged[1]
        if latency_ms is not None:
            bucket.latencies.add(_latency_bin(latency_ms))

    def add_inferences(
        self,
        times: Sequence[float],
        latencies: Sequence[float | None],
        incomplete: Sequence[bool] | None = None,
        checked: Sequence[int] | None = None,
        outside: Sequence[int] | None = None,
    ) -> None:
        """:meth:`add_inference` on each event in order, in one pass (the worker's batches).

        Equivalent to the one-by-one calls: an event is too late against the newest time seen
        *before* it, and buckets are filled oldest number first, so a ring slot ends up holding
        the newest bucket that maps to it, exactly as it would have."""
        n = len(times)
        if n < _FEW:  # numpy's fixed cost per call is more than a few events one by one
            zeros = [0] * n
            for t, ms, missing, c, o in zip(
                times,
                latencies,
                incomplete if incomplete is not None else [False] * n,
                checked if checked is not None else zeros,
                outside if outside is not None else zeros,
                strict=True,
            ):
                self.add_inference(t, ms, missing, (c, o))
            return
        admitted = self._admit(np.asarray(times, dtype=np.float64))
        if admitted is None:
            return
        numbers, kept = admitted
        n_buckets = self.n_buckets
        starts, slot = np.unique(numbers[kept], return_inverse=True)  # oldest number first
        columns = [np.bincount(slot, minlength=len(starts)).tolist()]
        for given in (incomplete, checked, outside):
            if given is None:
                columns.append([0] * len(starts))
            else:
                weights = np.asarray(given, dtype=np.int64)[kept]
                columns.append(np.bincount(slot, weights, len(starts)).astype(np.int64).tolist())
        bins = _latency_bins(latencies)[kept]
        timed = bins >= 0
        pairs, counts = np.unique(slot[timed] * _LAT_BINS + bins[timed], return_counts=True)
        hists: list[list[tuple[int, int]]] = [[] for _ in starts]
        for pair, count in zip(pairs.tolist(), counts.tolist(), strict=True):
            hists[pair // _LAT_BINS].append((pair % _LAT_BINS, count))
        for number, events, missing, c, o, hist in zip(
            starts.tolist(), *columns, hists, strict=True
        ):
            bucket = self._ring[number % n_buckets]
            if bucket.start != number:
                bucket.clear(number)
            bucket.events += events
            bucket.incomplete += missing
            bucket.checked += c
            bucket.outside += o
            if hist:
                bucket.latencies.add_many(hist)

    def add_outcome(
        self,
        event_time: float,
        predicted_positive: bool,
        actual_positive: bool,
        correct: bool,
        predicted: str | None = None,
        actual: str | None = None,
        probabilities: Probabilities | None = None,
    ) -> None:
        """A labelled classification outcome; with ``predicted``/``actual`` class labels the
        window also keeps a confusion matrix (per-class and macro metrics); with
        ``probabilities`` (P(positive), p(true class), confidence; any may be None) it keeps
        ROC-AUC, log loss and calibration error (:mod:`streams.scores`)."""
        bucket = self._bucket(event_time)
        if bucket is not None:
            outcome = (event_time, predicted_positive, actual_positive, correct, predicted, actual)
            self._add_run(bucket, OutcomeRun([(*outcome, probabilities)]))

    def add_outcomes(self, outcomes: Outcomes) -> None:
        """:meth:`add_outcome` on each of ``outcomes`` in order (the worker's label batches),
        with the same result: too late against the newest time seen up to each, buckets filled
        oldest number first (as :meth:`add_inferences`), and each bucket's run of outcomes
        added at once (:meth:`Outcomes.run`; sums term by term in arrival order)."""
        rows = outcomes.rows
        n = len(rows)
        if n < _FEW:
            for row in rows:
                self.add_outcome(*row)
            return
        admitted = self._admit(np.fromiter((row[0] for row in rows), dtype=np.float64, count=n))
        if admitted is None:
            return
        numbers, kept = admitted
        n_buckets = self.n_buckets
        first, last = int(numbers[kept].min()), int(numbers[kept].max())
        if first == last:
            groups = [(first, np.flatnonzero(kept).tolist())]
        else:
            groups = [
                (number, np.flatnonzero(kept & (numbers == number)).tolist())
                for number in np.unique(numbers[kept]).tolist()
            ]
        for number, positions in groups:
            bucket = self._ring[number % n_buckets]
            if bucket.start != number:
                bucket.clear(number)
            self._add_run(bucket, outcomes.run(positions))

    def _add_run(self, bucket: _Bucket, run: OutcomeRun) -> None:
        if run.scores is not None:
            if bucket.scores is None:
                bucket.scores = ScoreStats()
            bucket.scores.add_run(run.scores)
        bucket.labelled += run.labelled
        bucket.correct += run.correct
        bucket.tp += run.tp
        bucket.fp += run.fp
        bucket.fn += run.fn
        bucket.tn += run.tn
        confusion = bucket.confusion
        if len(confusion) + len(run.cells) >= MAX_CLASSES * MAX_CLASSES:
            for actual, predicted in run.pairs:  # near the cap: one by one, as add_outcome
                self._count_cell(
                    bucket, (_capped(actual, confusion), _capped(predicted, confusion))
                )
            return
        for cell, k in run.cells.items():
            had = confusion.get(cell)
            if had is None:  # new to this bucket: keyed with the window's one tuple for it
                confusion[self._cell(cell)] = k
            else:
                confusion[cell] = had + k

    def _count_cell(self, bucket: _Bucket, cell: tuple[str, str]) -> None:
        n = bucket.confusion.get(cell)
        if n is None:  # new to this bucket: keyed with the window's one tuple for it
            bucket.confusion[self._cell(cell)] = 1
        else:  # (the dict keeps the key it has)
            bucket.confusion[cell] = n + 1

    def add_regression_outcome(self, event_time: float, error: float, label: float = 0.0) -> None:
        """A labelled regression prediction: ``error`` = prediction - label."""
        bucket = self._bucket(event_time)
        if bucket is None:
            return
        bucket.labelled += 1
        bucket.regressed += 1
        bucket.abs_error += abs(error)
        bucket.sq_error += error * error
        bucket.sum_y += label
        bucket.sum_y2 += label * label

    # -- checkpoints ---------------------------------------------------------------------------
    def to_state(self) -> dict:
        """The live buckets as JSON-ready data (a restarted worker resumes exact windows).
        Every bucket but the newest is frozen on the way (:meth:`_Bucket.freeze`)."""
        live = self._live()
        newest = int(self.newest // self.bucket_s) if live else None
        for b in live:
            if b.start != newest:
                b.freeze()
        return {
            "window_s": self.window_s,
            "bucket_s": self.bucket_s,
            "newest": None if self.newest == -math.inf else self.newest,
            "oldest": None if self.oldest == math.inf else self.oldest,
            "too_late": self.too_late,
            "buckets": [_row(b) for b in live],
        }

    def restore(self, state: dict) -> None:
        """Resume from :meth:`to_state`.  A state with narrower buckets that divide this
        window's evenly (the 1-, 60- and 3,600-second buckets of checkpoints written before the
        windows had 12 buckets each) is merged into them; one of another shape is ignored."""
        if state.get("window_s") != self.window_s:
            return
        saved_s = float(state.get("bucket_s") or 0.0)
        ratio = float(self.bucket_s) / saved_s if saved_s > 0 else 0.0
        if ratio < 1 or ratio != round(ratio):
            return
        self._ring = [_Bucket() for _ in range(self.n_buckets)]
        newest, oldest = state.get("newest"), state.get("oldest")
        self.newest = -math.inf if newest is None else float(newest)
        self.oldest = math.inf if oldest is None else float(oldest)
        self.too_late = int(state.get("too_late", 0))
        first = int(self.newest // self.bucket_s) - self.n_buckets + 1 if newest is not None else 0
        for row in state.get("buckets", []):
            saved = _from_row(row)
            saved.confusion = {self._cell(cell): n for cell, n in saved.confusion.items()}
            number = saved.start // int(ratio)
            if number < first:
                continue
            if ratio == 1:
                self._ring[number % self.n_buckets] = saved  # frozen as read
                continue
            bucket = self._ring[number % self.n_buckets]
            if bucket.start != number:
                bucket.clear(number)
            bucket.merge(saved)
            bucket.freeze()

    def _cell(self, cell: tuple[str, str]) -> tuple[str, str]:
        """The one key object for ``cell`` (forgotten past 4 x MAX_CLASSES**2 cells seen)."""
        kept = self._cells.get(cell)
        if kept is None:
            if len(self._cells) >= 4 * MAX_CLASSES * MAX_CLASSES:
                self._cells.clear()
            kept = self._cells[cell] = cell
        return kept

    def _live(self) -> list[_Bucket]:
        if self.newest == -math.inf:
            return []
        first = int(self.newest // self.bucket_s) - self.n_buckets + 1
        return [b for b in self._ring if b.start >= first]

    def snapshot(self) -> dict[str, float | int | None]:
        """The window's metrics; a ratio with nothing to divide is ``None``."""
        live = self._live()
        events = sum(b.events for b in live)
        labelled = sum(b.labelled for b in live)
        tp, fp = sum(b.tp for b in live), sum(b.fp for b in live)
        fn = sum(b.fn for b in live)
        precision = tp / (tp + fp) if tp + fp else None
        recall = tp / (tp + fn) if tp + fn else None
        f1 = None
        if precision is not None and recall is not None and precision + recall > 0:
            f1 = 2 * precision * recall / (precision + recall)
        # the time the live buckets cover: from the first one's start (or the oldest event, in a
        # young window) to the newest event; 55-60 s of a minute with 5-second buckets
        span = 0.0
        if live:
            first = (int(self.newest // self.bucket_s) - self.n_buckets + 1) * self.bucket_s
            span = max(self.newest - max(self.oldest, first), self.bucket_s)
        regressed = sum(b.regressed for b in live)
        confusion: dict[tuple[str, str], int] = {}
        for b in live:
            for cell, n in b.confusion.items():
                confusion[cell] = confusion.get(cell, 0) + n
        classified = labelled - regressed
        hist = added([b.latencies for b in live], _LAT_BINS)
        return {
            "events": events,
            "event_rate_per_s": events / span if live else 0.0,
            "missing_rate": sum(b.incomplete for b in live) / events if events else None,
            "out_of_range_rate": _rate(sum(b.outside for b in live), sum(b.checked for b in live)),
            "labelled": labelled,
            "accuracy": sum(b.correct for b in live) / classified if classified else None,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "mae": sum(b.abs_error for b in live) / regressed if regressed else None,
            "rmse": math.sqrt(sum(b.sq_error for b in live) / regressed) if regressed else None,
            "r2": _r2(live, regressed),
            **_class_metrics(confusion),
            **ScoreStats.summary([b.scores for b in live if b.scores is not None]),
            "latency_p50_ms": _quantile(hist, 0.50),
            "latency_p95_ms": _quantile(hist, 0.95),
            "latency_p99_ms": _quantile(hist, 0.99),
            "window_s": self.window_s,
            "newest_event_time": None if self.newest == -math.inf else self.newest,
        }


MAX_CLASSES = 50  # per bucket; further classes are counted as "(other)"


def _capped(label: str, confusion: dict[tuple[str, str], int]) -> str:
    if len(confusion) < MAX_CLASSES * MAX_CLASSES:
        return label
    known = {c for cell in confusion for c in cell}
    return label if label in known else "(other)"


def _class_metrics(confusion: dict[tuple[str, str], int]) -> dict:
    """Per-class precision/recall/F1/support, macro F1 and the confusion matrix (JSON strings
    for the Redis hash; empty when no class labels were recorded)."""
    if not confusion:
        return {"macro_f1": None, "per_class": None, "confusion": None}
    classes = sorted({c for cell in confusion for c in cell})
    per_class = {}
    for c in classes:
        tp = confusion.get((c, c), 0)
        predicted = sum(n for (_, p), n in confusion.items() if p == c)
        support = sum(n for (a, _), n in confusion.items() if a == c)
        precision = tp / predicted if predicted else None
        recall = tp / support if support else None
        f1 = None
        if precision is not None and recall is not None and precision + recall > 0:
            f1 = 2 * precision * recall / (precision + recall)
        elif precision is not None and recall is not None:
            f1 = 0.0
        per_class[c] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    f1s = [m["f1"] for m in per_class.values() if m["f1"] is not None]
    matrix = {a: {p: confusion.get((a, p), 0) for p in classes} for a in classes}
    return {
        "macro_f1": sum(f1s) / len(f1s) if f1s else None,
        "per_class": json_metric(per_class),
        "confusion": json_metric(matrix),
    }


def _row(b: _Bucket) -> list:
    """The bucket's checkpoint row."""
    return [
        b.start, b.events, b.labelled, b.correct, b.tp, b.fp, b.fn, b.tn,
        b.regressed, b.abs_error, b.sq_error, b.sum_y, b.sum_y2,
        b.latencies.to_text(),
        [[a, p, n] for (a, p), n in sorted(b.confusion.items())],
        b.scores.to_list() if b.scores is not None else None,
        b.incomplete,
        b.checked,
        b.outside,
    ]  # fmt: skip


def _from_row(row: list) -> _Bucket:
    """A bucket from its checkpoint row (:func:`_row`, or a shorter one from before)."""
    (start, events, labelled, correct, tp, fp, fn, tn, regressed, abs_e, sq_e, sy, sy2, lat,
     confusion) = row[:15]  # fmt: skip
    scores = row[15] if len(row) > 15 else None
    bucket = _Bucket(
        int(start), int(events), int(labelled), int(correct), int(tp), int(fp), int(fn),
        int(tn), int(regressed), float(abs_e), float(sq_e), float(sy), float(sy2),
        {(str(a), str(p)): int(n) for a, p, n in confusion},
        # base64 of a packed tally; [[bin, count], ...] in checkpoints from before
        Tally.from_text(lat) if isinstance(lat, str) else Tally.from_pairs(lat),
        ScoreStats.from_list(scores) if scores else None,
    )  # fmt: skip
    bucket.incomplete = int(row[16]) if len(row) > 16 else 0
    if len(row) > 18:
        bucket.checked, bucket.outside = int(row[17]), int(row[18])
    return bucket


def _r2(live: list[_Bucket], n: int) -> float | None:
    """1 - SSE / SST over the window's regression outcomes (None if the labels do not vary)."""
    if n < 2:
        return None
    sum_y = sum(b.sum_y for b in live)
    sst = sum(b.sum_y2 for b in live) - sum_y * sum_y / n
    if sst <= 1e-12 * max(1.0, abs(sum_y)):
        return None
    return 1.0 - sum(b.sq_error for b in live) / sst


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _quantile(hist: np.ndarray, q: float) -> float | None:
    """The centre of the first bin whose cumulative count reaches ``q`` of the total."""
    total = float(hist.sum())
    if not total:
        return None
    b = int(np.searchsorted(np.cumsum(hist), q * total, side="left"))
    return _bin_value(min(b, int(np.flatnonzero(hist)[-1])))
