"""One conformance suite, run over every registered detector class."""

from __future__ import annotations

import doctest
import json
from itertools import pairwise

import numpy as np
import pytest

import detectors
from detectors import REGISTRY, DriftDetector, StateError, detector_from_state
from tests.unit.detector_streams import (
    change_stream,
    constant_stream,
    insert,
    invalid_inputs,
    stationary_stream,
)
from tests.unit.state_compare import close_states

CLASSES = sorted(REGISTRY.values(), key=lambda c: c.name)


def _stream(cls: type[DriftDetector], seed: int = 0, n: int = 6000):
    """A clear change half-way, in the detector's input kind."""
    return change_stream(cls.input_kind, seed, n)


def _assert_same_state(a: bytes, b: bytes) -> None:
    """Checkpoints equal up to float rounding (vectorised sums add in another order)."""
    assert close_states(json.loads(a), json.loads(b)), f"{a!r} != {b!r}"


def _instances(cls: type[DriftDetector]) -> list[DriftDetector]:
    out = [cls()]
    if cls._unit_test_params():
        out.append(cls(**cls._unit_test_params()))
    return out


def _alarms(detector: DriftDetector, values: np.ndarray) -> list[int]:
    alarms = []
    for i, x in enumerate(values):
        detector.update(x)
        if detector.drift_detected:
            alarms.append(i)
    return alarms


@pytest.fixture(params=CLASSES, ids=lambda c: c.__name__)
def cls(request):
    return request.param


def test_detects_a_clear_change(cls):
    # False-alarm rates are measured by bench/detection.py, not here: river's default
    # Page-Hinkley (which ours reproduces) does raise some on i.i.d. noise.
    for detector in _instances(cls):
        alarms = _alarms(detector, _stream(cls))
        assert any(3000 <= a < 3500 for a in alarms), (
            f"{detector!r} missed a 1.5-sigma shift: {alarms}"
        )


def test_checkpoint_mid_stream_continues_identically(cls):
    values = _stream(cls, seed=1)
    for reference in _instances(cls):
        expected = _alarms(reference, values)
        first = type(reference)(**reference.params)
        head = _alarms(first, values[:3100])
        blob = first.get_state()
        json.loads(blob)  # a checkpoint is plain JSON
        restored = type(reference).from_state(blob)
        tail = [3100 + i for i in _alarms(restored, values[3100:])]
        assert head + tail == expected
        assert restored.result == reference.result
        assert detector_from_state(blob).params == reference.params


def test_state_rejects_other_detectors_and_versions(cls):
    blob = json.loads(cls().get_state())
    blob["version"] = 999
    with pytest.raises(StateError, match="version"):
        cls.from_state(json.dumps(blob))
    blob["detector"] = "something-else"
    with pytest.raises(StateError):
        cls.from_state(json.dumps(blob))
    with pytest.raises(StateError):
        cls.from_state(b"\x80not json")


def test_batch_update_equals_one_by_one(cls):
    values = _stream(cls, seed=2)
    one, batch = cls(), cls()
    expected = _alarms(one, values)
    got = list(batch.update_many(values[:2500])) + [
        2500 + i for i in batch.update_many(values[2500:])
    ]
    assert got == expected
    _assert_same_state(batch.get_state(), one.get_state())


def test_update_until_alarm_stops_at_each_alarm_with_its_result(cls):
    """Fed in chunks that end at each alarm: the same alarms, each with the result the
    one-by-one path reported at that value (what the stream worker publishes)."""
    values = _stream(cls, seed=3)
    for reference in _instances(cls):
        expected = []
        for i, x in enumerate(values):
            reference.update(x)
            if reference.drift_detected:
                expected.append((i, reference.result))
        chunked = type(reference)(**reference.params)
        got, start = [], 0
        while start < len(values):
            consumed = chunked.update_until_alarm(values[start : start + 1700])
            assert 0 < consumed <= min(1700, len(values) - start)
            start += consumed
            if chunked.drift_detected:
                got.append((start - 1, chunked.result))
        assert [i for i, _ in got] == [i for i, _ in expected]
        for (_, mine), (_, theirs) in zip(got, expected, strict=True):
            assert mine.index == theirs.index
            assert mine.statistic == pytest.approx(theirs.statistic, rel=1e-9, abs=1e-12)
        _assert_same_state(chunked.get_state(), reference.get_state())


def test_reset_forgets_everything(cls):
    fresh = cls()
    used = cls()
    _alarms(used, _stream(cls, seed=3))
    used.reset()
    assert used.get_state() == fresh.get_state()
    assert not used.drift_detected and used.n_seen == 0


def test_constant_stream_never_alarms(cls):
    detector = cls()
    assert len(detector.update_many(constant_stream(cls.input_kind, 20_000))) == 0


def test_non_finite_values_are_ignored_and_counted(cls):
    values = _stream(cls, seed=4, n=2000)
    clean, dirty = cls(), cls()
    clean.update_many(values)
    dirty.update_many(
        insert(cls.input_kind, values, [10, 500, 1500], invalid_inputs(cls.input_kind))
    )
    assert dirty.n_rejected == 3 and dirty.n_seen == clean.n_seen
    assert dirty.statistic == clean.statistic


def test_memory_is_bounded_on_a_long_stream(cls):
    detector = cls()
    detector.update_many(stationary_stream(cls.input_kind, 5, 20_000))
    size_20k = len(detector.get_state())
    detector.update_many(stationary_stream(cls.input_kind, 6, 80_000))
    assert len(detector.get_state()) < 2 * size_20k + 512


def _held_arrays(obj, path="", seen=None):
    """Every numpy array ``obj`` holds (attributes, containers, detectors inside), by path."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        yield path, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _held_arrays(value, f"{path}[{key!r}]", seen)
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            yield from _held_arrays(value, f"{path}[{i}]", seen)
    elif type(obj).__module__.startswith("detectors") and hasattr(obj, "__dict__"):
        for name, value in vars(obj).items():
            yield from _held_arrays(value, f"{path}.{name}", seen)


def test_no_array_it_keeps_is_a_view_of_a_much_larger_one(cls):
    """A row sliced from a block and kept (``block[-1]``) keeps the whole block alive: a
    Mahalanobis window sum kept 17 KB per block that way, in every model."""
    detector = cls()
    detector.update_many(stationary_stream(cls.input_kind, 7, 5_137))  # windows part-filled
    for path, array in _held_arrays(detector):
        base = array.base
        if isinstance(base, np.ndarray):
            assert base.nbytes <= max(2 * array.nbytes, 1024), (path, array.shape, base.shape)


def test_result_record_describes_the_detector(cls):
    detector = cls()
    detector.update_many(_stream(cls, seed=6))
    result = detector.result
    assert result.detector == detector.reports_as  # the class's own name, but for wrappers
    assert detector.reports_as == cls.name or cls.name == "rolling"
    assert result.params == detector.params
    assert result.index == detector.n_seen


def test_has_a_runnable_docstring_example(cls):
    examples = doctest.DocTestFinder().find(cls, cls.__name__, globs={})[0].examples
    assert examples, f"{cls.__name__} has no doctest example"


def test_every_detector_is_exported():
    assert {c.__name__ for c in CLASSES} <= set(detectors.__all__)


def test_cusum_reference_that_stops_being_binary_restarts_as_numeric():
    from detectors import CUSUM

    counts = np.r_[np.tile([0.0, 1.0], 20), np.random.default_rng(9).poisson(3, 3000)]
    one, batch = CUSUM(), CUSUM()
    expected = _alarms(one, counts)
    assert list(batch.update_many(counts)) == expected
    assert one.calibrated and not json.loads(one.get_state())["state"]["binary"]
    _assert_same_state(one.get_state(), batch.get_state())


def test_cbpe_learns_its_reference_from_labelled_values_only_in_batches_too():
    """Regression test: the block path of reference learning took unlabelled values into
    CBPE's reference too (a worker dead-lettered every inference with float(None))."""
    from detectors import CBPE

    rng = np.random.default_rng(4)
    confidence = rng.uniform(0.5, 1.0, 3000).tolist()
    values = [(c, bool(rng.random() < c) if i % 3 else None) for i, c in enumerate(confidence)]
    one, batch = CBPE(), CBPE()
    expected = _alarms(one, values)
    got = batch.update_many(values[:1000]).tolist()
    got += [1000 + i for i in batch.update_many(values[1000:]).tolist()]
    assert got == expected
    _assert_same_state(batch.get_state(), one.get_state())
    assert batch.calibrated


OTHER_COUNTS = ("ref_counts", "win_counts")


def test_class_distribution_counts_classes_beyond_its_limit_alike_in_batches():
    """The batch path counts each block's classes at once: classes past ``max_classes`` must
    share the ``__other__`` count exactly as they do one value at a time, in the reference and
    in the windows, with new classes appearing after the reference."""
    from detectors import ClassDistribution

    rng = np.random.default_rng(11)
    two = rng.choice(list("ab"), 1000).tolist()  # a reference of two classes: room for more
    many = rng.choice(list("abcdefghijkl"), 1500).tolist()  # windows with new classes
    values = [*two, *many, None, float("nan"), 3, *many, *two, *many]
    params = {"reference_size": 400, "window": 150, "max_classes": 5}
    one, batch = ClassDistribution(**params), ClassDistribution(**params)
    expected, got = [], []
    for start in range(0, len(values), 223):  # the states agree after every block
        block = values[start : start + 223]
        expected += [start + i for i in _alarms(one, block)]
        got += [start + i for i in batch.update_many(block).tolist()]
        _assert_same_state(batch.get_state(), one.get_state())
    assert expected and got == expected
    assert any(json.loads(one.get_state())["state"][k].get("__other__") for k in OTHER_COUNTS)


NUMERIC = [c for c in CLASSES if c.input_kind in ("real", "binary", "latency", "event_time")]


@pytest.mark.parametrize("numeric", NUMERIC, ids=lambda c: c.__name__)
def test_columns_advanced_together_equal_each_alone(numeric):
    """``update_columns_if_quiet`` over several detectors (a model's features) leaves each
    detector that took its column exactly as ``update_until_alarm`` would, and the others
    untouched; fed the rest alone, both sides stay equal through changes, re-learnt references
    and non-finite values.  A class that overrides it must take most columns that a calibrated
    detector takes quietly in one call."""
    cls = numeric  # detectors of numbers: a column each
    rng = np.random.default_rng(11)
    for reference in _instances(cls):
        width = 4
        streams = [np.asarray(_stream(cls, seed=20 + j), dtype=np.float64) for j in range(width)]
        columns = np.stack(streams, axis=1)
        columns[rng.choice(len(columns), 5, replace=False), 1] = np.nan
        together = [type(reference)(**reference.params) for _ in range(width)]
        alone = [type(reference)(**reference.params) for _ in range(width)]
        # blocks of random sizes, some ending right at an alarm of the first column
        alarms = type(reference)(**reference.params).update_many(columns[:, 0]) + 1
        cuts = np.union1d(np.cumsum(rng.integers(1, 400, len(columns))), alarms)
        cuts = [0, *cuts[cuts < len(columns)].tolist(), len(columns)]
        taken_total, quiet_total = 0, 0
        for start, end in pairwise(cuts):
            block = columns[start:end]
            taken = cls.update_columns_if_quiet(together, block)
            assert taken.shape == (width,) and taken.dtype == bool
            taken_total += int(taken.sum())
            for j in range(width):
                before = together[j].get_state()
                calibrated = getattr(alone[j], "calibrated", True)
                used = alone[j].update_until_alarm(block[:, j])
                quiet_total += calibrated and used == len(block) and not alone[j].drift_detected
                _feed_until_done(alone[j], block[used:, j])
                if taken[j]:
                    assert not together[j].drift_detected
                else:
                    assert together[j].get_state() == before  # untouched
                    _feed_until_done(together[j], block[:, j])
                assert together[j].get_state() == alone[j].get_state(), (reference, end, j)
        overridden = cls.update_columns_if_quiet.__func__ is not (
            DriftDetector.update_columns_if_quiet.__func__
        )
        if overridden:
            assert taken_total > 0.5 * quiet_total > 0, (taken_total, quiet_total)
        else:
            assert taken_total == 0


def _feed_until_done(detector: DriftDetector, values: np.ndarray) -> None:
    start = 0
    while start < len(values):
        start += detector.update_until_alarm(values[start:])


def test_feature_drift_report_reads_back_from_a_checkpoint_old_or_new():
    """The per-feature report is kept as an array (20 dicts took 6 KB a model); a checkpoint
    written when it was a list of dicts gives the same report back."""
    from detectors import FeatureDrift

    rng = np.random.default_rng(3)
    detector = FeatureDrift(reference_size=200, window=100)
    rows = rng.normal(size=(400, 3))
    rows[350:, 2] += 0.3  # feature 2 moves a little in the last window (no alarm)
    assert not detector.update_many(rows).any()
    report = detector.feature_report
    assert [f["feature"] for f in report] == [0, 1, 2] and report[2]["ks"] > report[0]["ks"]
    assert not any(f["drifted"] for f in report) and report[2]["psi"] > 0
    assert FeatureDrift.from_state(detector.get_state()).feature_report == report
    old = json.loads(detector.get_state())
    old["state"]["report"] = report  # as it was written before
    assert FeatureDrift.from_state(json.dumps(old)).feature_report == report


def test_feature_drift_resumes_its_reference_from_a_checkpoint_old_or_new():
    """The reference rows are kept as one array (a list of rows of floats took 4x); a
    checkpoint written mid-reference when they were a list of rows resumes the same."""
    from detectors import FeatureDrift
    from detectors.state import encode_value

    rows = np.random.default_rng(4).normal(size=(450, 3))
    detector = FeatureDrift(reference_size=200, window=100)
    detector.update_many(rows[:120])  # mid-reference
    new = json.loads(detector.get_state())
    old = json.loads(detector.get_state())
    old["state"]["reference"] = encode_value(detector._reference.tolist())  # as it was written
    assert old["state"]["reference"] != new["state"]["reference"]
    resumed = [FeatureDrift.from_state(json.dumps(doc)) for doc in (new, old)]
    assert all(
        isinstance(d._reference, np.ndarray) and d._reference.shape == (120, 3) for d in resumed
    )
    for d in (detector, *resumed):
        d.update_many(rows[120:])
    assert detector.calibrated and detector.feature_report
    for d in resumed:
        assert d.statistic == detector.statistic and d.feature_report == detector.feature_report


def test_cusum_reference_sketches_share_their_bin_edges():
    """Every feature's CUSUM sketches its reference on the same edges: one tuple, not a list
    of 31 floats in each (27 KB of a young 20-feature model)."""
    from detectors.reference import ReferenceSketch

    first, second = ReferenceSketch(size=100, clip=3.0), ReferenceSketch(size=500, clip=3.0)
    assert first._edges is second._edges and len(first._edges) == 31
    assert ReferenceSketch(size=100, clip=4.0)._edges[-1] == 4.0
