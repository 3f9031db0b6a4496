"""Alarm lifecycle: open once, repeats held back, resolve when the signal is back; incidents."""

from __future__ import annotations

import json
import random

from contracts.alarms import CLOUDEVENT_HEADERS, RESOLVED_TYPE, is_resolution
from contracts.events import InferenceEvent
from contracts.settings import Settings
from streams.lifecycle import AlarmBook
from streams.monitor import ModelMonitor, MonitorConfig
from streams.runtime import MonitorRuntime, Source
from tests.unit.test_runtime import ListPublisher, ListSink


def _events(levels: list[tuple[int, float]], seed: int = 0, rate: float = 10.0):
    """Feature ``x`` at each (count, mean) in turn; 10 events per second of event time."""
    rng, i, out = random.Random(seed), 0, []
    for count, mean in levels:
        for _ in range(count):
            out.append(
                InferenceEvent(
                    "m", "v1", f"r{i}", 1000.0 + i / rate, {"x": rng.gauss(mean, 1)}, 1, score=0.9
                )
            )
            i += 1
    return out


def _config() -> MonitorConfig:
    return MonitorConfig(
        feature_detectors=(("cusum", {"reference_size": 300}),),
        resolve_after_s=60.0,
        incident_window_s=30.0,
    )


def test_a_blip_opens_once_then_resolves_when_the_signal_is_back():
    monitor = ModelMonitor("m", _config())
    opened, resolved = [], []
    # normal, a 300-event blip at +3 sd, then normal again for long enough to relearn and be quiet
    for event in _events([(1000, 0.0), (300, 3.0), (3000, 0.0)]):
        opened += [a for a in monitor.observe_inference(event).alarms if a.signal_name == "x"]
        resolved += [r for r in monitor.resolve_quiet() if r.alarm.signal_name == "x"]
    assert len(opened) >= 1 and opened[0].incident
    assert [r.dedup_key for r in resolved] == ["m/feature:x/cusum"]
    assert resolved[0].alarm == opened[0]
    assert resolved[0].resolved_at - opened[-1].event_time >= 60.0
    assert "m/feature:x/cusum" not in monitor.book.open_alarms


def test_a_lasting_shift_stays_open_though_the_detector_adapted():
    monitor = ModelMonitor("m", _config())
    resolved = []
    for event in _events([(1000, 0.0), (4000, 3.0)]):
        monitor.observe_inference(event)
        resolved += monitor.resolve_quiet()
    assert "m/feature:x/cusum" in monitor.book.open_alarms
    assert not [r for r in resolved if r.alarm.signal_name == "x"]
    detector = monitor.features["x"].detectors["cusum"]
    assert detector.calibrated  # it learnt the new level, yet the model did not come back


def test_repeats_on_an_open_key_are_counted_not_published():
    monitor = ModelMonitor("m", _config())
    events = _events([(1000, 0.0), (400, 3.0), (400, -3.0), (400, 3.0)])
    published = [a for e in events for a in monitor.observe_inference(e).alarms]
    x = [a for a in published if a.signal_name == "x"]
    assert len(x) == 1  # the later detections on x repeat the open alarm
    assert monitor.counts["alarms_repeated"] >= 1
    assert monitor.counts["alarms"] == len(published)


def test_simultaneous_alarms_of_a_model_share_one_incident():
    from contracts.alarms import Alarm

    def alarm(name: str, t: float) -> Alarm:
        return Alarm("m", "v1", "feature", name, "cusum", 2.0, 1.0, {}, "warning", t, 7)

    book = AlarmBook(resolve_after_s=100, incident_window_s=30)
    a, b, c = book.open(alarm("a", 0.0)), book.open(alarm("b", 20.0)), book.open(alarm("c", 95.0))
    assert a.incident == b.incident != c.incident
    again = AlarmBook(resolve_after_s=100, incident_window_s=30)
    assert again.open(alarm("a", 0.0)).incident == a.incident  # derived, not random


def test_the_book_survives_a_checkpoint():
    monitor = ModelMonitor("m", _config())
    for event in _events([(1000, 0.0), (300, 3.0)]):
        monitor.observe_inference(event)
    assert monitor.book.open_alarms
    resumed = ModelMonitor("m", _config())
    resumed.restore(json.loads(json.dumps(monitor.checkpoint())))
    assert resumed.book.snapshot() == json.loads(json.dumps(monitor.book.snapshot()))


async def test_the_runtime_publishes_resolutions_with_cloudevents_headers_and_open_alarms():
    publisher, sink = ListPublisher(), ListSink()
    runtime = MonitorRuntime(Settings(topic_prefix="t"), publisher, sink, config=_config())
    events = _events([(1000, 0.0), (300, 3.0), (3000, 0.0)])
    for offset in range(0, len(events), 100):
        chunk = events[offset : offset + 100]
        messages = [
            (e.to_json(), Source("t.inferences", 0, offset + i)) for i, e in enumerate(chunk)
        ]
        await runtime.handle_inferences(messages)
        if offset == 1300:  # right after the blip: the alarm is open, and Redis shows it
            await runtime.flush()
            assert "m/feature:x/cusum" in sink.open_alarms["m"]
    await runtime.flush()
    on_topic = [
        (value, headers) for topic, _, value, headers in publisher.sent if topic == "t.alarms"
    ]
    assert all(headers == CLOUDEVENT_HEADERS for _, headers in on_topic)
    resolutions = [json.loads(v) for v, _ in on_topic if is_resolution(v)]
    assert [
        r["data"]["dedup_key"] for r in resolutions if "feature:x" in r["data"]["dedup_key"]
    ] == ["m/feature:x/cusum"]
    assert (
        resolutions[0]["type"] == RESOLVED_TYPE and resolutions[0]["data"]["status"] == "resolved"
    )
    assert "m/feature:x/cusum" not in sink.open_alarms["m"]
    assert runtime.counts["alarms.resolved"] == len(resolutions)


def test_alarms_on_a_replaced_version_s_own_signals_resolve_when_it_stops_serving():
    """Regression test: after version 2 replaced version 1, version 1's error alarm stayed
    open for good (its signal got no new values, so it never looked normal again)."""
    from contracts.events import LabelEvent

    monitor = ModelMonitor("m", _config())
    rng = random.Random(3)
    errors, resolved = [], []
    for i in range(4000):  # v1: right at first, then wrong on 60% of its labels
        t = 1000.0 + i / 10
        monitor.observe_inference(InferenceEvent("m", "v1", f"a{i}", t, {"x": 0.0}, 1, score=0.9))
        wrong = i >= 2500 and rng.random() < 0.6
        out = monitor.observe_label(LabelEvent("m", f"a{i}", 0 if wrong else 1, t + 0.05))
        errors += [a for a in out.alarms if a.signal_kind == "error"]
        resolved += monitor.resolve_quiet()
    assert errors and errors[0].model_version == "v1"
    v2 = [InferenceEvent("m", "v2", f"b{i}", 1400.0 + i / 10, {"x": 0.0}, 1) for i in range(1200)]
    for start in range(0, len(v2), 100):  # v2 serves (the batch path) for two minutes
        monitor.observe_inferences(v2[start : start + 100])
        resolved += monitor.resolve_quiet()
    ended = [r for r in resolved if r.dedup_key == errors[0].dedup_key]
    assert len(ended) == 1 and "version v1 has served no prediction" in ended[0].reason
    assert ended[0].resolved_at - monitor.served["v1"] >= 60.0  # resolve_after_s of v2 alone
    assert errors[0].dedup_key not in monitor.book.open_alarms
    resumed = ModelMonitor("m", _config())  # the versions' last predictions are checkpointed
    resumed.restore(json.loads(json.dumps(monitor.checkpoint())))
    assert resumed.served == monitor.served
