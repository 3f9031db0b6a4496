from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
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
# r2 waits behind r1 though older; r1's label (at 150) leaves r2 first in line, past its TTL
@example([("p", 1, 300.0), ("p", 2, 10.0), ("l", 1, 150.0), ("l", 5, 151.0)], None)
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


class _CountsRunsAtOnce(LabelJoin):
    at_once = 0

    def _add_at_once(self, *args) -> bool:
        taken = super()._add_at_once(*args)
        type(self).at_once += taken
        return taken


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 150),  # request id: a repeat now and then
            # the step to the next event time: mostly on, at times back
            st.one_of(*[st.floats(5, 30)] * 3, st.floats(-40, 0)),
            st.booleans(),  # a flush (a drain of the journal) after this event's run
            st.integers(1, 20) | st.none(),  # a label, for the prediction this many events back
        ),
        max_size=120,
    ),
    st.sampled_from([None, 0, 5, 20]),
    st.sampled_from([1, 4, 16, 40]),
    st.sampled_from([8, 60]),
)
# r1 joins (at 203); in the next run r2 (at 353) makes the join forget it, so r1's redelivered
# prediction right after is no duplicate (the run's lookup, made before, said joined)
@example(
    [
        (1, 0.0, False, 4),
        (9, 1.0, False, None),
        (8, 1.0, False, None),
        (7, 1.0, False, None),
        (2, 150.0, False, None),
        (1, 1.0, False, None),
        (3, 1.0, False, None),
    ],
    None,
    4,
    60,
)
def test_a_run_stored_at_once_waits_as_one_by_one(steps, memory, run, most):
    """Mostly in-order traffic, where add_predictions stores a whole run at once: the waiting
    entries, journal, spill, expiry, joins and counts equal add_prediction on each event, with
    labels joining (so redelivered predictions of joined requests), the size cap reached, and
    entries out of time order that the spill makes first in line (ttl 100)."""
    journal = memory is not None
    one = LabelJoin(ttl_s=100, max_pending=most, memory=memory, journal=journal)
    many = _CountsRunsAtOnce(ttl_s=100, max_pending=most, memory=memory, journal=journal)
    t, events = 200.0, []
    for rid, step, _, _ in steps:
        t = max(0.0, t + step)
        events.append(InferenceEvent("m", "v1", f"r{rid}", t, {"a": t, "b": rid}, 1, score=0.5))
    for start in range(0, len(events), run):
        part = events[start : start + run]
        if many.labels_wait(e.request_id for e in part):
            continue  # the batch path hands such a run to add_prediction
        for event in part:
            assert one.add_prediction(event) is None
        many.add_predictions(part, np.array([[e.features["a"], e.features["b"]] for e in part]))
        assert list(many._predictions.items()) == list(one._predictions.items())
        assert many.take_counts() == one.take_counts()
        _, _, flush, back = steps[start]
        if back is not None and start + len(part) - back >= 0:
            label = LabelEvent(
                "m", events[start + len(part) - back].request_id, 1, part[-1].event_time
            )
            assert many.add_label(label) == one.add_label(label)
        assert len(many._joined) == len(one._joined)
        if journal and flush:
            assert many.drain() == one.drain()
    assert list(many._labels) == list(one._labels)


def test_a_run_arriving_with_more_labels_waiting_than_the_cap_trims_them_as_one_by_one():
    """Labels restored from a checkpoint can outnumber the cap until the next expiry scan."""
    joins = [LabelJoin(ttl_s=100, max_pending=4), _CountsRunsAtOnce(ttl_s=100, max_pending=4)]
    for join in joins:
        join.restore_early_labels("m", [[f"early{i}", 1, 50.0 + i, 1] for i in range(6)])
    part = [_p(f"r{i}", 60.0 + i) for i in range(3)]
    for event in part:
        joins[0].add_prediction(event)
    joins[1].add_predictions(part, np.ones((3, 1)))
    assert list(joins[1]._labels) == list(joins[0]._labels) == [f"early{i}" for i in range(2, 6)]
    assert joins[1].take_counts() == joins[0].take_counts() == {"labels_expired": 2}


@pytest.mark.parametrize(
    ("memory", "before", "label", "run", "expired"),
    [
        # the spill makes an older entry (10, out of time order) first: the run's 111 expires it
        (3, [100.0, 10.0, 105.0], None, [108.0, 111.0], {"predictions_expired": 1}),
        # the spill makes the run's own first entry (10) first: its 115 expires it
        (1, [100.0], None, [10.0, 115.0], {"predictions_expired": 1}),
        # no prediction waits, a joined request does (at 3): the run's 140 forgets it
        (0, [0.0, 1.0, 2.0, 3.0], "p3", [50.0, 90.0, 120.0, 140.0], {}),
    ],
)
def test_a_run_reaching_the_ttl_of_what_becomes_first_expires_it_as_one_by_one(
    memory, before, label, run, expired
):
    """Where the oldest entry in line changes while a run arrives, the run is not stored at
    once past that entry's TTL (ttl 100)."""
    joins = [LabelJoin(ttl_s=100, memory=memory, journal=True)]
    joins.append(_CountsRunsAtOnce(ttl_s=100, memory=memory, journal=True))
    earlier = [_p(f"p{i}", t) for i, t in enumerate(before)]
    part = [_p(f"r{i}", t) for i, t in enumerate(run)]
    for join in joins:
        for event in earlier:
            join.add_prediction(event)
        if label is not None:
            join.add_label(LabelEvent("m", label, 1, before[-1]))
        join.drain()  # in the backing store: the spill may drop them from memory
    for event in part:
        joins[0].add_prediction(event)
    joins[1].add_predictions(part, np.ones((len(part), 1)))
    assert list(joins[1]._predictions.items()) == list(joins[0]._predictions.items())
    assert joins[1].take_counts() == joins[0].take_counts() == expired
    assert len(joins[1]._joined) == len(joins[0]._joined) == 0


def test_runs_are_stored_at_once_in_the_usual_case():
    """The property test above does exercise the run-at-once path (not only the fallback)."""
    before = _CountsRunsAtOnce.at_once
    join = _CountsRunsAtOnce(ttl_s=100, max_pending=60, memory=5, journal=True)
    for k in range(3):
        part = [_p(f"r{k}-{i}", k * 10.0 + i) for i in range(10)]
        join.add_predictions(part, np.ones((10, 1)))
        join.drain()
    assert _CountsRunsAtOnce.at_once - before == 3
    assert len(join._predictions) == 5


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["p", "l", "l"]),
            st.integers(0, 25),  # request id: labels twice, before their prediction, ...
            st.floats(0, 30, allow_nan=False),  # the step to the next event time
        ),
        max_size=150,
    ),
    st.sampled_from([1, 3, 10, 40]),
)
# r1 joins at 1; a batch's first label (at 202) makes the join forget it, so the next label
# of r1 is no duplicate but waits (the batch's lookup, made before, said joined)
@example([("p", 1, 0.0), ("l", 1, 1.0), ("p", 2, 1.0), ("l", 3, 200.0), ("l", 1, 1.0)], 10)
def test_a_batch_of_labels_joins_as_one_by_one(steps, batch):
    """add_labels (the joined ids looked up once per batch) gives the outcomes, waiting
    entries and counts of add_label on each label: duplicates within a batch, and joined ids
    that an expiry forgets in the middle of one (ttl 100: their buckets leave meanwhile)."""
    one, many = LabelJoin(ttl_s=100, max_pending=30), LabelJoin(ttl_s=100, max_pending=30)
    t, pending_labels = 0.0, []

    def flush_labels():
        outcomes = many.add_labels(pending_labels)
        assert outcomes == [one.add_label(label) for label in pending_labels]
        pending_labels.clear()

    for kind, rid, step in steps:
        t += step
        if kind == "p":
            flush_labels()
            event = _p(f"r{rid}", t)
            assert many.add_prediction(event) == one.add_prediction(event)
        else:
            pending_labels.append(LabelEvent("m", f"r{rid}", 1, t))
            if len(pending_labels) == batch:
                flush_labels()
        assert list(many._predictions) == list(one._predictions)
    flush_labels()
    assert list(many._labels) == list(one._labels)
    assert many.take_counts() == one.take_counts()
    assert len(many._joined) == len(one._joined)


def test_labels_missing_from_memory_are_those_neither_waiting_nor_joined():
    join = LabelJoin(ttl_s=100)
    for rid in ("a", "b"):
        join.add_prediction(_p(rid, 1.0))
    join.add_label(LabelEvent("m", "a", 1, 2.0))  # joined
    labels = [LabelEvent("m", rid, 1, 3.0) for rid in ("a", "b", "c")]
    assert [label.request_id for label in join.missing(labels)] == ["c"]


def test_waiting_predictions_written_by_earlier_releases_still_load():
    """Redis may hold waiting predictions in the all-JSON form of earlier releases for a day
    after an upgrade: they load as they did."""
    old = b'[5.0,"v1",1,0.9,null,12.5,1,null,["x","y"],[0.5,-2.0]]'
    stored = StoredPrediction.from_bytes("m", "r1", old)
    assert stored.event() == InferenceEvent(
        "m", "v1", "r1", 5.0, {"x": 0.5, "y": -2.0}, 1, score=0.9, latency_ms=12.5
    )
    assert StoredPrediction.from_bytes("m", "r1", stored.to_bytes()) == stored
