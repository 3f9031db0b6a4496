from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.events import InferenceEvent, LabelEvent
from streams.join import LabelJoin, StoredPrediction


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


class _AlwaysTrims(LabelJoin):
    """The join without its shortcut: every arrival scans the oldest entries."""

    def _expire(self, now: float) -> None:
        self._quiet_until = -float("inf")
        super()._expire(now)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["p", "l"]),
            st.integers(0, 30),  # request id
            st.floats(0, 400, allow_nan=False),  # event time: out of order, often past the TTL
        ),
        max_size=120,
    ),
    st.sampled_from([None, 0, 3]),
)
def test_skipping_the_expiry_scan_never_changes_what_expires(steps, memory):
    """The join skips its expiry scan while the oldest entries are within the TTL: the
    outcomes, the waiting entries and every count equal a join that scans at each arrival."""
    fast = LabelJoin(ttl_s=100, max_pending=8, memory=memory, journal=memory is not None)
    slow = _AlwaysTrims(ttl_s=100, max_pending=8, memory=memory, journal=memory is not None)
    for step, (kind, rid, t) in enumerate(steps):
        request = f"r{rid}"
        if kind == "p":
            event = InferenceEvent("m", "v1", request, t, {"x": 1.0}, 1)
            results = [j.add_prediction(event) for j in (fast, slow)]
        else:
            label = LabelEvent("m", request, 1, t)
            results = [j.add_label(label) for j in (fast, slow)]
        assert results[0] == results[1]
        assert list(fast._predictions) == list(slow._predictions)
        assert list(fast._labels) == list(slow._labels)
        assert fast.take_counts() == slow.take_counts()
        if memory is not None and step % 5 == 4:  # a flush: spilled entries may leave memory
            fast.drain(), slow.drain()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 40), st.floats(0, 400, allow_nan=False)), max_size=80),
    st.sampled_from([None, 0, 5]),
    st.booleans(),
)
def test_a_run_of_predictions_waits_as_one_by_one(steps, memory, as_matrix):
    """add_predictions (the batch path, with or without its feature matrix) leaves the join as
    add_prediction on each event does: duplicates, expiry, journal and memory spill alike."""
    journal = memory is not None
    one = LabelJoin(ttl_s=100, max_pending=12, memory=memory, journal=journal)
    many = LabelJoin(ttl_s=100, max_pending=12, memory=memory, journal=journal)
    for join in (one, many):  # a label that never finds its prediction here
        join.add_label(LabelEvent("m", "elsewhere", 1, 0.0))
        join._joined.add("r3", 0.0)  # and one request that has joined already
    events = [
        InferenceEvent("m", "v1", f"r{rid}", t, {"a": t, "b": -t}, 1, score=0.5) for rid, t in steps
    ]
    for start in range(0, len(events), 16):
        part = events[start : start + 16]
        for event in part:
            assert one.add_prediction(event) is None
        matrix = np.array([[e.features["a"], e.features["b"]] for e in part]).reshape(-1, 2)
        many.add_predictions(part, matrix if as_matrix else None)
        assert list(many._predictions.items()) == list(one._predictions.items())
        assert many.drain() == one.drain()
    assert many.take_counts() == one.take_counts()
    assert list(many._labels) == list(one._labels)


def test_waiting_predictions_written_by_earlier_releases_still_load():
    """Redis may hold waiting predictions in the all-JSON form of earlier releases for a day
    after an upgrade: they load as they did."""
    old = b'[5.0,"v1",1,0.9,null,12.5,1,null,["x","y"],[0.5,-2.0]]'
    stored = StoredPrediction.from_bytes("m", "r1", old)
    assert stored.event() == InferenceEvent(
        "m", "v1", "r1", 5.0, {"x": 0.5, "y": -2.0}, 1, score=0.9, latency_ms=12.5
    )
    assert StoredPrediction.from_bytes("m", "r1", stored.to_bytes()) == stored
