from __future__ import annotations

import json
import random
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import checkpoint_parts
from streams.rolling import MAX_CLASSES, Outcomes, WindowedMetrics


def test_old_buckets_leave_the_window():
    m = WindowedMetrics(window_s=60, bucket_s=1)
    for t in range(0, 120):
        m.add_inference(1000.0 + t)
    snap = m.snapshot()
    assert snap["events"] == 60
    assert snap["event_rate_per_s"] == pytest.approx(60 / 59)  # 60 events from 1060 to 1119


@pytest.mark.parametrize("end", [1119.0, 1116.5, 1115.1])
def test_the_rate_divides_by_the_time_the_live_buckets_cover(end):
    """With 12 buckets a minute's window holds 55-60 s of events: dividing by 60 s would read a
    steady 10 events/s as low as 9.2."""
    m = WindowedMetrics(window_s=60, bucket_s=5)
    t = 1000.0
    while t <= end:
        m.add_inference(t)
        t += 0.1
    assert m.snapshot()["event_rate_per_s"] == pytest.approx(10.0, rel=0.01)


def test_records_older_than_the_window_are_counted_not_used():
    m = WindowedMetrics(window_s=60, bucket_s=1)
    m.add_inference(5000.0)
    m.add_inference(4000.0)
    assert m.snapshot()["events"] == 1
    assert m.too_late == 1


def test_latency_quantiles_are_close_to_exact():
    rng = np.random.default_rng(0)
    latencies = rng.lognormal(3, 0.8, 20_000)
    m = WindowedMetrics(window_s=3600, bucket_s=60)
    for i, ms in enumerate(latencies):
        m.add_inference(1000.0 + i * 0.1, float(ms))
    snap = m.snapshot()
    for q, key in ((0.5, "latency_p50_ms"), (0.95, "latency_p95_ms"), (0.99, "latency_p99_ms")):
        assert snap[key] == pytest.approx(np.quantile(latencies, q), rel=0.03)


def test_classification_metrics():
    m = WindowedMetrics(window_s=60, bucket_s=1)
    # tp=3, fp=1, fn=2, tn=4
    cases = [(True, True)] * 3 + [(True, False)] + [(False, True)] * 2 + [(False, False)] * 4
    for predicted, actual in cases:
        m.add_outcome(10.0, predicted, actual, predicted == actual)
    snap = m.snapshot()
    assert snap["accuracy"] == pytest.approx(0.7)
    assert snap["precision"] == pytest.approx(0.75)
    assert snap["recall"] == pytest.approx(0.6)
    assert snap["f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)


def test_empty_window_has_no_ratios():
    snap = WindowedMetrics(60, 1).snapshot()
    assert snap["events"] == 0 and snap["accuracy"] is None and snap["latency_p99_ms"] is None


def test_windows_resume_exactly_from_their_state():
    """Regression test: rolling windows were not checkpointed, so a restarted worker's 1h
    window held only what came after the restart."""
    import json
    import random

    from streams.rolling import WindowedMetrics

    rng = random.Random(1)
    records = [
        (1000.0 + i, rng.lognormvariate(2, 0.5), rng.random() < 0.8, rng.gauss(0, 1))
        for i in range(5000)
    ]

    def feed(window, rows):
        for t, latency, correct, error in rows:
            window.add_inference(t, latency)
            window.add_outcome(t, correct, True, correct)
            window.add_regression_outcome(t, error, 3.0 * error + 1.0)

    undisturbed, before_crash = WindowedMetrics(3600, 60), WindowedMetrics(3600, 60)
    feed(undisturbed, records)
    feed(before_crash, records[:3000])
    resumed = WindowedMetrics(3600, 60)
    resumed.restore(json.loads(json.dumps(before_crash.to_state())))
    feed(resumed, records[3000:])
    assert resumed.snapshot() == undisturbed.snapshot()
    assert resumed.snapshot()["events"] == 3600  # the whole hour, not only the last 2,000
    other_shape = WindowedMetrics(60, 1)
    other_shape.restore(before_crash.to_state())  # a changed window setting starts afresh
    assert other_shape.snapshot()["events"] == 0


def test_a_checkpoint_with_narrower_buckets_is_merged_into_the_windows_buckets():
    """Checkpoints written when the windows had 1-, 60- and 3,600-second buckets restore into
    12 buckets per window: the same figures as a window that always had the wider buckets
    (counts exactly, sums to rounding); widths that do not divide evenly start afresh."""
    import json
    import math
    import random

    rng = random.Random(2)
    records = [
        (1000.0 + i * 0.7, rng.lognormvariate(2, 0.5), rng.random() < 0.8, rng.random())
        for i in range(400)
    ]
    narrow, wide = WindowedMetrics(60, 1), WindowedMetrics(60, 5)
    for window in (narrow, wide):
        for t, latency, correct, p in records:
            window.add_inference(t, latency)
            window.add_outcome(t, correct, True, correct, "a", "a" if correct else "b", (p, p, p))
            window.add_regression_outcome(t, p - 0.5, p)
    merged = WindowedMetrics(60, 5)
    merged.restore(json.loads(json.dumps(narrow.to_state())))
    got, expected = merged.snapshot(), wide.snapshot()
    assert got.keys() == expected.keys() and expected["events"] > 50
    for name, value in expected.items():
        if isinstance(value, float):
            assert math.isclose(got[name], value, rel_tol=1e-9, abs_tol=1e-12), name
        else:
            assert got[name] == value, name
    uneven = WindowedMetrics(60, 7.5)
    uneven.restore(narrow.to_state())
    assert uneven.snapshot()["events"] == 0


def test_regression_metrics_match_their_definitions():
    import numpy as np

    from streams.rolling import WindowedMetrics

    rng = np.random.default_rng(3)
    labels = rng.normal(5.0, 2.0, 500)
    predictions = labels + rng.normal(0.0, 0.7, 500)
    window = WindowedMetrics(3600, 60)
    for i, (p, y) in enumerate(zip(predictions, labels, strict=True)):
        window.add_regression_outcome(1000.0 + i, float(p - y), float(y))
    snap = window.snapshot()
    errors = predictions - labels
    r2 = 1 - np.sum(errors**2) / np.sum((labels - labels.mean()) ** 2)
    assert snap["mae"] == pytest.approx(np.mean(np.abs(errors)))
    assert snap["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)))
    assert snap["r2"] == pytest.approx(r2)


def test_per_class_metrics_and_confusion_matrix_match_their_definitions():
    import json

    from streams.rolling import WindowedMetrics

    pairs = [("a", "a")] * 6 + [("a", "b")] * 2 + [("b", "b")] * 3 + [("b", "c")] + [("c", "a")]
    window = WindowedMetrics(3600, 60)
    for i, (actual, predicted) in enumerate(pairs):
        window.add_outcome(
            1000.0 + i, predicted == "a", actual == "a", actual == predicted, predicted, actual
        )
    snap = window.snapshot()
    matrix = json.loads(snap["confusion"])
    assert matrix == {
        "a": {"a": 6, "b": 2, "c": 0},
        "b": {"a": 0, "b": 3, "c": 1},
        "c": {"a": 1, "b": 0, "c": 0},
    }
    per_class = json.loads(snap["per_class"])
    assert per_class["a"]["precision"] == pytest.approx(6 / 7)
    assert per_class["a"]["recall"] == pytest.approx(6 / 8)
    assert per_class["b"]["f1"] == pytest.approx(2 * 0.6 * 0.75 / (0.6 + 0.75))
    assert per_class["c"]["f1"] == 0.0 and per_class["c"]["support"] == 1
    f1s = [per_class[c]["f1"] for c in "abc"]
    assert snap["macro_f1"] == pytest.approx(sum(f1s) / 3)
    assert snap["accuracy"] == pytest.approx(9 / 13)


def test_probability_metrics_match_a_direct_computation():
    """ROC-AUC (Mann-Whitney on scores rounded to 0.01), log loss and calibration error of a
    window equal the same figures computed directly from the outcomes."""
    import math
    import random

    from contracts.events import InferenceEvent, LabelEvent
    from streams.monitor import ModelMonitor

    rng = random.Random(4)
    monitor = ModelMonitor("m")
    rows = []
    for i in range(600):
        actual = rng.random() < 0.4
        p = min(max(rng.gauss(0.65 if actual else 0.35, 0.2), 0.001), 0.999)
        p = min(max(round(p, 2), 0.01), 0.98) + 0.001  # inside a 0.01 bin: binned AUC exact
        event = InferenceEvent(
            "m",
            "v1",
            f"r{i}",
            100.0 + i,
            {"x": 1.0},
            int(p >= 0.5),
            probabilities={"1": p, "0": 1 - p},
        )
        monitor.observe_inference(event)
        monitor.observe_label(LabelEvent("m", f"r{i}", int(actual), 100.0 + i))
        rows.append((p, actual))
    snap = monitor.metrics()["1h"]
    pos = [p for p, a in rows if a]
    neg = [p for p, a in rows if not a]
    auc = sum((x > y) + 0.5 * (x == y) for x in pos for y in neg) / (len(pos) * len(neg))
    assert snap["roc_auc"] == pytest.approx(auc, abs=1e-9)
    log_loss = -sum(math.log(p if a else 1 - p) for p, a in rows) / len(rows)
    assert snap["log_loss"] == pytest.approx(log_loss, rel=1e-9)
    bins: dict[int, list[float]] = {}
    for p, a in rows:
        confidence = max(p, 1 - p)
        cell = bins.setdefault(min(int(confidence * 10), 9), [0, 0.0, 0])
        cell[0] += 1
        cell[1] += confidence
        cell[2] += (p >= 0.5) == a
    ece = sum(n / len(rows) * abs(k / n - c / n) for n, c, k in bins.values())
    assert snap["ece"] == pytest.approx(ece, rel=1e-9)
    resumed = ModelMonitor("m")
    resumed.restore(monitor.checkpoint())
    assert resumed.metrics()["1h"]["roc_auc"] == snap["roc_auc"]  # kept in the checkpoint


def test_missing_rate_counts_inferences_without_a_feature_of_the_layout():
    from contracts.events import InferenceEvent
    from streams.monitor import ModelMonitor

    events = [
        InferenceEvent(
            "m",
            "v1",
            f"r{i}",
            100.0 + i,
            {"a": 1.0} if i % 10 == 3 else {"a": 1.0, "b": 2.0},
            1,
            score=0.9,
        )
        for i in range(400)
    ]
    one, batched = ModelMonitor("m"), ModelMonitor("m")
    for event in events:
        one.observe_inference(event)
    batched.observe_inferences(events)
    assert one.metrics()["1h"]["missing_rate"] == pytest.approx(0.1)
    assert batched.metrics()["1h"]["missing_rate"] == pytest.approx(0.1)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 400),  # out of order, often too late for a 60 s window
            st.one_of(st.none(), st.floats(0, 1e5)),
            st.booleans(),
            st.integers(0, 20),  # feature values checked; a quarter of them out of range
        ),
        max_size=60,
    ),
    st.integers(0, 3),
)
def test_a_batch_of_inferences_fills_the_window_as_one_by_one(rows, batches):
    """add_inferences (numpy, the worker's batches) = add_inference on each event in order."""
    one, many = WindowedMetrics(60, 5), WindowedMetrics(60, 5)
    for t, latency, missing, checked in rows:
        one.add_inference(t, latency, missing, (checked, checked // 4))
    cut = sorted({0, len(rows), *(len(rows) * k // (batches + 1) for k in range(1, batches + 1))})
    for a, b in pairwise(cut):
        part = rows[a:b]
        many.add_inferences(
            [r[0] for r in part],
            [r[1] for r in part],
            [r[2] for r in part],
            [r[3] for r in part],
            [r[3] // 4 for r in part],
        )
    assert many.to_state() == one.to_state()
    assert many.too_late == one.too_late


_OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["inference", "inferences", "outcome", "regression"]),
        st.floats(0, 400),  # out of order, often too late for a 60 s window
        st.booleans(),
    ),
    max_size=40,
)


def _apply(window: WindowedMetrics, operation: tuple[str, float, bool]) -> None:
    kind, t, flag = operation
    if kind == "inference":
        window.add_inference(t, 5.0 if flag else None)
    elif kind == "inferences":  # the vectorised path, which updates the ring itself
        window.add_inferences([t + k for k in range(20)], [3.0] * 20, [flag] * 20)
    elif kind == "outcome":
        window.add_outcome(t, flag, True, flag, "a" if flag else "b", "a", (0.7, 0.7, 0.7))
    else:
        window.add_regression_outcome(t, 0.5 if flag else -2.0, 1.0)


@settings(max_examples=150, deadline=None)
@given(_OPERATIONS)
def test_a_checkpoint_between_changes_writes_what_a_fresh_window_writes(operations):
    """A checkpoint freezes every bucket but the newest (their histograms packed into bytes,
    streams.tally) and a later add thaws one: after any change, the window's state, the text
    the checkpoint's field holds and the metrics are those of a window that never
    checkpointed or was read before."""
    kept = WindowedMetrics(60, 5)
    for i, operation in enumerate(operations):
        _apply(kept, operation)
        fresh = WindowedMetrics(60, 5)
        for earlier in operations[: i + 1]:
            _apply(fresh, earlier)
        state, expected = kept.to_state(), fresh.to_state()
        assert state == expected
        assert checkpoint_parts._dumps(state["buckets"]) == json.dumps(
            expected["buckets"], separators=(",", ":")
        )
        assert kept.snapshot() == fresh.snapshot()


def test_buckets_share_one_key_object_per_confusion_cell_through_a_restore():
    """Every bucket's confusion matrix keys a cell with the same tuple (a key per bucket cost
    a model 8 KB), and a restored window's do too; the counts stay each bucket's own."""
    window = WindowedMetrics(60.0, 5.0)
    for i in range(120):
        actual, predicted = ["cat", "dog", "eel"][i % 3], ["cat", "dog"][i % 2]
        # a new string per event, as a decoder gives them
        window.add_outcome(
            float(i // 2), predicted == "cat", actual == "cat", actual == predicted,
            "".join(predicted), "".join(actual),
        )  # fmt: skip
    resumed = WindowedMetrics(60.0, 5.0)
    resumed.restore(json.loads(json.dumps(window.to_state())))
    for w in (window, resumed):
        cells = [cell for b in w._ring for cell in b.confusion]
        assert len(cells) == 12 * 6 and len({id(cell) for cell in cells}) == 6
    assert resumed.snapshot() == window.snapshot()


_OUTCOMES = st.lists(
    st.tuples(
        st.floats(0, 400),  # out of order, often too late for a 60 s window
        st.booleans(),
        st.booleans(),
        st.sampled_from(["a", "b", "c", None]),
        st.one_of(
            st.none(),
            st.tuples(
                st.one_of(st.none(), st.floats(0, 1)),
                st.one_of(st.none(), st.floats(0, 1)),
                st.one_of(st.none(), st.floats(-0.5, 1.5)),  # some outside [0, 1]: ignored
            ),
        ),
    ),
    max_size=80,
)


def _outcome(row: tuple) -> tuple:
    t, predicted_positive, actual_positive, actual, probabilities = row
    predicted = "a" if predicted_positive else "b"
    correct = actual == predicted
    return (t, predicted_positive, actual_positive, correct, predicted, actual, probabilities)


@settings(max_examples=200, deadline=None)
@given(_OUTCOMES, st.integers(0, 3), st.booleans())
def test_a_batch_of_outcomes_fills_the_window_as_one_by_one(rows, batches, checkpoint_between):
    """add_outcomes (a bucket's run at once, the worker's label batches) = add_outcome on each
    outcome in order: the same state, floats included, across buckets, too-late outcomes and
    buckets frozen by a checkpoint in between."""
    one, many = WindowedMetrics(60, 5), WindowedMetrics(60, 5)
    outcomes = [_outcome(row) for row in rows]
    cut = sorted({0, len(rows), *(len(rows) * k // (batches + 1) for k in range(1, batches + 1))})
    for a, b in pairwise(cut):
        batch = Outcomes()
        for outcome in outcomes[a:b]:
            one.add_outcome(*outcome)
            batch.append(*outcome)
        many.add_outcomes(batch)
        if checkpoint_between:
            assert many.to_state() == one.to_state()
    assert many.to_state() == one.to_state()
    assert many.too_late == one.too_late
    assert many.snapshot() == one.snapshot()


def test_a_batch_of_outcomes_near_the_class_cap_counts_as_one_by_one():
    """Past MAX_CLASSES**2 confusion cells a bucket counts new classes as "(other)": a batch
    that could reach the cap goes one by one, and ends where one by one ends."""
    rng = random.Random(3)
    one, many = WindowedMetrics(60, 60), WindowedMetrics(60, 60)
    classes = [f"c{i}" for i in range(MAX_CLASSES + 20)]
    batch = Outcomes()
    for i in range(9000):
        known = classes[: MAX_CLASSES + 10] if i < 7000 else classes  # new ones past the cap
        predicted, actual = rng.choice(known), rng.choice(known)
        outcome = (10.0 + i * 1e-3, False, False, predicted == actual, predicted, actual, None)
        one.add_outcome(*outcome)
        batch.append(*outcome)
    many.add_outcomes(batch)
    assert many.to_state() == one.to_state()
    cells = {(a, p) for a, p, _ in one.to_state()["buckets"][0][14]}
    assert len(cells) > MAX_CLASSES * MAX_CLASSES
    assert any("(other)" in cell for cell in cells)


def test_a_batch_of_outcomes_adds_its_sums_term_by_term():
    """Log loss and reliability sums over arbitrary probabilities come out bit for bit as one
    by one (a summation in another order, or a compensated one, differs in the last bits)."""
    rng = random.Random(7)
    one, many = WindowedMetrics(60, 60), WindowedMetrics(60, 60)
    for batch_start in range(0, 3000, 1000):
        batch = Outcomes()
        for i in range(batch_start, batch_start + 1000):
            p = rng.random() ** 4  # spread over magnitudes, so the order of the sum shows
            predicted_positive, actual_positive = p >= 0.5, rng.random() < p
            outcome = (
                10.0 + i * 0.001,
                predicted_positive,
                actual_positive,
                predicted_positive == actual_positive,
                str(int(predicted_positive)),
                str(int(actual_positive)),
                (p, p if actual_positive else 1 - p, max(p, 1 - p)),
            )
            one.add_outcome(*outcome)
            batch.append(*outcome)
        many.add_outcomes(batch)
    assert many.to_state() == one.to_state()
    assert many.snapshot()["log_loss"] == one.snapshot()["log_loss"]
