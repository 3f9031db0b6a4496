"""A reference profile calibrates the input detectors before the first live event."""

from __future__ import annotations

import random

import pytest

from contracts.events import InferenceEvent
from contracts.settings import Settings
from streams.monitor import ModelMonitor
from streams.profile import ProfileError, ReferenceProfile
from streams.runtime import MonitorRuntime, Source
from tests.unit.test_runtime import ListPublisher, ListSink


def _profile(n: int = 3000, seed: int = 1) -> ReferenceProfile:
    rng = random.Random(seed)
    return ReferenceProfile.from_rows(
        ["x", "y"], [[rng.gauss(0, 1), rng.gauss(5, 2)] for _ in range(n)]
    )


def _shifted(n: int, seed: int = 2) -> list[InferenceEvent]:
    rng = random.Random(seed)
    return [
        InferenceEvent(
            "m",
            "v1",
            f"r{i}",
            1000.0 + i,
            {"x": rng.gauss(3, 1), "y": rng.gauss(5, 2)},
            1,
            score=0.9,
        )
        for i in range(n)
    ]


def test_with_a_profile_a_shift_in_the_first_live_events_pages():
    warm, cold = ModelMonitor("m"), ModelMonitor("m")
    warm.warm_up(_profile())
    assert warm.features["x"].calibrated and warm.counts["inferences"] == 0
    events = _shifted(300)
    paged = [a.signal_name for _, a in warm.observe_inferences(events).alarms]
    assert "x" in paged and "y" not in paged
    assert not [a for _, a in cold.observe_inferences(events).alarms if a.signal_name == "x"]


def test_a_profile_is_ignored_once_live_traffic_set_the_layout():
    monitor = ModelMonitor("m")
    monitor.observe_inferences(_shifted(5))
    monitor.warm_up(_profile())
    assert not monitor.features["x"].calibrated  # still learning from live traffic


async def test_the_runtime_warms_up_a_model_without_checkpoint_from_its_profile():
    publisher, sink = ListPublisher(), ListSink()
    sink.profiles["m"] = _profile()
    runtime = MonitorRuntime(Settings(topic_prefix="t"), publisher, sink)
    events = _shifted(200)
    await runtime.handle_inferences(
        [(e.to_json(), Source("t.inferences", 0, i)) for i, e in enumerate(events)]
    )
    assert runtime.counts["profiles.applied"] == 1
    assert any(
        b"feature" in value and b'"x"' in value
        for topic, _, value, _ in publisher.sent
        if topic == "t.alarms"
    )


def test_a_csv_becomes_a_profile_or_a_clear_error(tmp_path):
    good = tmp_path / "train.csv"
    good.write_text("y,x,label\n1.5,2,yes\n2.5,3,no\n")
    profile = ReferenceProfile.from_csv(good, drop=("label",))
    assert profile.features == ["x", "y"] and profile.rows == [[2.0, 1.5], [3.0, 2.5]]
    with pytest.raises(ProfileError, match="--drop"):
        ReferenceProfile.from_csv(good)  # the label column is not a number
    with pytest.raises(ProfileError, match="cannot read"):
        ReferenceProfile.from_csv(tmp_path / "missing.csv")
