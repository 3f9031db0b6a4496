from __future__ import annotations

from contracts.events import InferenceEvent, LabelEvent
from streams.join import LabelJoin


def _p(rid: str, t: float) -> InferenceEvent:
    return InferenceEvent("m", "v1", rid, t, {"x": 1.0}, prediction=1)


def test_label_before_prediction_still_joins():
    join = LabelJoin()
    assert join.add_label(LabelEvent("m", "r1", 1, 10.0)) is None
    joined = join.add_prediction(_p("r1", 9.0))
    assert joined is not None and joined.label.label == 1
    assert join.pending == (0, 0)


def test_entries_expire_after_ttl_and_are_counted():
    join = LabelJoin(ttl_s=60)
    join.add_prediction(_p("old", 0.0))
    join.add_prediction(_p("new", 100.0))
    assert join.expired_predictions == 1
    assert join.add_label(LabelEvent("m", "old", 1, 101.0)) is None
    assert join.add_label(LabelEvent("m", "new", 0, 101.0)) is not None


def test_memory_is_capped():
    join = LabelJoin(ttl_s=1e9, max_pending=100)
    for i in range(1000):
        join.add_prediction(_p(f"r{i}", float(i)))
    assert join.pending[0] == 100 and join.expired_predictions == 900


def test_redelivered_prediction_is_not_joined_twice():
    join = LabelJoin()
    join.add_prediction(_p("r1", 1.0))
    join.add_prediction(_p("r1", 1.0))
    assert join.duplicates == 1
    assert join.add_label(LabelEvent("m", "r1", 1, 2.0)) is not None
    assert join.add_label(LabelEvent("m", "r1", 1, 2.0)) is None


def test_a_duplicate_label_after_its_join_never_joins_again():
    """Regression test: a duplicate label arriving after the join was parked, then joined a
    redelivered copy of the prediction: one outcome counted twice."""
    from contracts.events import InferenceEvent, LabelEvent
    from streams.join import LabelJoin

    join = LabelJoin(ttl_s=3600, max_pending=100)
    prediction = InferenceEvent("m", "v1", "r1", 100.0, {"x": 1.0}, prediction=1)
    label = LabelEvent("m", "r1", label=1, event_time=110.0)
    assert join.add_prediction(prediction) is None
    assert join.add_label(label) is not None
    assert join.add_label(label) is None  # the duplicate label ...
    assert join.add_prediction(prediction) is None  # ... and a redelivered prediction
    assert join.duplicates == 2 and join.pending == (0, 0)


def test_expired_and_duplicate_entries_are_handed_out_once_for_the_counters():
    join = LabelJoin(ttl_s=100, max_pending=1000)
    join.add_prediction(InferenceEvent("m", "v1", "old", 0.0, {"x": 1.0}, 1))
    join.add_label(LabelEvent("m", "orphan", 1, 5.0))
    assert join.take_counts() == {}
    p = InferenceEvent("m", "v1", "r1", 200.0, {"x": 1.0}, 1)  # 200 s later: both expire
    join.add_prediction(p)
    join.add_prediction(p)  # a redelivered copy
    assert join.take_counts() == {
        "predictions_expired": 1,
        "labels_expired": 1,
        "join_duplicates": 1,
    }
    assert join.take_counts() == {}  # handed out once
