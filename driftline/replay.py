"""Backtesting: run recorded traffic through a model's detectors offline, as the worker would.

Sources: a file of recorded events (JSONL as on the topics, CSV or Parquet with one column per
feature) or a topic's offset range (:func:`read_topic_range`).  Tabular columns with these names
are not features: ``event_time`` (seconds; default: one row per second), ``model_version``
(``v1``), ``request_id``, ``prediction``, ``score``, ``latency_ms``, ``label`` (a row with a
label also yields its label event).

>>> rows = [{"x": float(i % 7), "prediction": 1, "label": 1} for i in range(300)]
>>> report = replay(events_from_rows(rows, "m"), "m")
>>> report.inferences, report.labels, report.alarms
(300, 300, [])
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.alarms import Alarm
from contracts.envelopes import decode_message
from contracts.events import InferenceEvent, InvalidEvent, LabelEvent
from streams.monitor import ModelMonitor, MonitorConfig

RESERVED = {
    "event_time",
    "model_version",
    "request_id",
    "prediction",
    "score",
    "latency_ms",
    "label",
    "model_id",
}
Event = InferenceEvent | LabelEvent


@dataclass
class ReplayReport:
    model_id: str
    inferences: int = 0
    labels: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> rows skipped
    alarms: list[dict[str, Any]] = field(default_factory=list)
    resolved: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)  # the 1d window at the end

    def by_signal(self) -> list[tuple[str, int, int]]:
        """(signal/detector, alarms, first inference index)."""
        seen: dict[str, list[int]] = {}
        for a in self.alarms:
            seen.setdefault(f"{a['signal']}/{a['detector']}", []).append(a["inference"])
        return [(k, len(v), min(v)) for k, v in sorted(seen.items(), key=lambda kv: min(kv[1]))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "inferences": self.inferences,
            "labels": self.labels,
            "rejected": dict(self.rejected),
            "alarms": self.alarms,
            "resolved": self.resolved,
            "metrics": self.metrics,
        }


def events_from_rows(rows: Iterable[dict[str, Any]], model_id: str) -> Iterator[Event]:
    """Tabular rows (CSV, Parquet) as inference events, plus label events where labelled."""
    for i, row in enumerate(rows):
        t = float(row.get("event_time") if row.get("event_time") not in (None, "") else i)
        request_id = str(row.get("request_id") or f"replay-{i}")
        prediction = row.get("prediction")
        features = {
            k: float(v) for k, v in row.items() if k not in RESERVED and v not in (None, "")
        }
        score = row.get("score")
        latency = row.get("latency_ms")
        yield InferenceEvent(
            model_id=str(row.get("model_id") or model_id),
            model_version=str(row.get("model_version") or "v1"),
            request_id=request_id,
            event_time=t,
            features=features,
            prediction=_scalar(prediction if prediction not in (None, "") else 0),
            score=None if score in (None, "") else float(score),
            latency_ms=None if latency in (None, "") else float(latency),
        )
        label = row.get("label")
        if label not in (None, ""):
            yield LabelEvent(str(row.get("model_id") or model_id), request_id, _scalar(label), t)


def _scalar(value: Any) -> Any:
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else number
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def events_from_jsonl(lines: Iterable[bytes | str], report: ReplayReport) -> Iterator[Event]:
    """Lines as on the topics: inference events, label events or envelopes of either."""
    for line in lines:
        if not line.strip():
            continue
        decoded = None
        for kind in ("inference", "label"):
            try:
                decoded = decode_message(line, kind)
                break
            except InvalidEvent as exc:
                reason = exc.reason
        if decoded is None:
            report.rejected[reason] += 1
            continue
        yield from decoded.events


def read_file(path: Path, model_id: str, report: ReplayReport) -> Iterator[Event]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        with path.open("rb") as lines:
            yield from events_from_jsonl(lines, report)
    elif suffix == ".csv":
        import csv

        with path.open(newline="") as f:
            yield from events_from_rows(csv.DictReader(f), model_id)
    elif suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ValueError(
                "reading Parquet needs pyarrow: pip install 'driftline[parquet]'"
            ) from None
        table = pq.read_table(path)
        for batch in table.to_batches(10_000):
            yield from events_from_rows(batch.to_pylist(), model_id)
    else:
        raise ValueError(f"unknown file type {suffix!r}: use .jsonl, .csv or .parquet")


def _alarm_row(alarm: Alarm, inference: int) -> dict[str, Any]:
    return {
        "inference": inference,
        "event_time": alarm.event_time,
        "signal": f"{alarm.signal_kind}:{alarm.signal_name}",
        "detector": alarm.detector,
        "statistic": alarm.statistic,
        "threshold": alarm.threshold,
        "severity": alarm.severity,
        "model_version": alarm.model_version,
    }


def replay(
    events: Iterable[Event],
    model_id: str,
    config: MonitorConfig | None = None,
    progress: Callable[[int], None] | None = None,
    batch: int = 500,
) -> ReplayReport:
    """Feed ``model_id``'s events to a fresh monitor in batches, in order; other models'
    events are skipped (counted as ``other_model``)."""
    monitor = ModelMonitor(model_id, config or MonitorConfig())
    report = ReplayReport(model_id)
    chunk: list[Event] = []

    def run() -> None:
        kind = type(chunk[0])
        if kind is InferenceEvent:
            out = monitor.observe_inferences(chunk)
            base = report.inferences
            report.inferences += len(chunk)
        else:
            out = monitor.observe_labels(chunk)
            base = report.inferences
            report.labels += len(chunk)
        report.alarms += [
            _alarm_row(a, base + (p if kind is InferenceEvent else 0)) for p, a in out.alarms
        ]
        report.resolved += len(monitor.resolve_quiet())
        if progress is not None:
            progress(len(chunk))
        chunk.clear()

    for event in events:
        if event.model_id != model_id:
            report.rejected["other_model"] += 1
            continue
        if chunk and (type(event) is not type(chunk[0]) or len(chunk) >= batch):
            run()
        chunk.append(event)
    if chunk:
        run()
    report.metrics = monitor.metrics().get("1d", {})
    return report


def save_report(report: ReplayReport, path: Path) -> None:
    path.write_text(json.dumps(report.to_dict(), indent=2, default=str))
