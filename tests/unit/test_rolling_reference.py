"""A rolling reference's features advanced together, through refreshes and hand-overs, stay
exactly where one at a time takes them."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import CUSUM
from detectors.rolling import RollingReference


def _feed_alone(detector, values: np.ndarray) -> None:
    start = 0
    while start < len(values):
        start += detector.update_until_alarm(values[start:])


def _references_completed(detector: RollingReference) -> int:
    """Re-learnt references that took over, and the first one once complete (an alarm, which
    sends the first reference back to learning, takes one off)."""
    return detector.refreshes + detector.calibrated


def _streams(width: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    columns = rng.normal(size=(n, width))
    columns[:, 1] = 0.9 * np.roll(columns[:, 1], 1) + columns[:, 1]  # some autocorrelation
    columns[n // 2 :, 2] += 2.5  # one feature moves: alarms, a new reference
    columns[rng.choice(n, 6, replace=False), 3] = np.nan  # absent values
    return columns


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_blocks_cut_at_hand_overs_equal_each_alone(seed):
    """Blocks cut where the next reference changes hands (a refresh due, a shadow taking
    over, a first reference completing), and at random: each feature that takes its block
    together is exactly as ``update_until_alarm`` leaves it alone, and in blocks cut at a
    hand-over every hand-over of a finite column happens on the together path."""
    width, every, size = 4, 700, 150
    make = lambda: RollingReference("cusum", {"reference_size": size}, every=every)  # noqa: E731
    together = [make() for _ in range(width)]
    alone = [make() for _ in range(width)]
    columns = _streams(width, 6000, seed)
    rng = np.random.default_rng(seed)
    start, eligible, on_together_path = 0, 0, 0
    while start < len(columns):
        ahead = min((d.values_to_hand_over() for d in together), key=lambda a: a or 10**9)
        at_hand_over = bool(ahead) and rng.random() < 0.7
        end = start + int(ahead if at_hand_over else rng.integers(1, 400))
        block = columns[start : min(end, len(columns))]
        taken = RollingReference.update_columns_if_quiet(together, block)
        for j in range(width):
            completed = _references_completed(alone[j])
            before = together[j].get_state()
            _feed_alone(alone[j], block[:, j])
            if not taken[j]:
                assert together[j].get_state() == before  # untouched
                _feed_alone(together[j], block[:, j])
            assert together[j].get_state() == alone[j].get_state(), (seed, start, j)
            if at_hand_over and np.isfinite(block[:, j]).all():
                changed = max(0, _references_completed(alone[j]) - completed)
                eligible += changed
                on_together_path += changed * bool(taken[j])
        start += len(block)
    assert eligible > 10 and on_together_path == eligible, (eligible, on_together_path)


def test_a_block_completing_the_shadow_hands_over_on_the_together_path():
    """A block of exactly the values the shadow's reference needs is taken together and the
    shadow serves after it, as alone; with an absent value in it, it is not taken (the CUSUM
    advances only finite columns together)."""
    make = lambda: RollingReference("cusum", {"reference_size": 100}, every=300)  # noqa: E731
    together, alone = make(), make()
    warm = np.random.default_rng(0).normal(size=400)
    _feed_alone(together, warm)
    _feed_alone(alone, warm)
    block = np.random.default_rng(1).normal(size=together.values_to_hand_over())
    block[10] = np.nan
    assert not RollingReference.update_columns_if_quiet([together], block[:, None])[0]
    block[10] = 0.5
    assert RollingReference.update_columns_if_quiet([together], block[:, None])[0]
    _feed_alone(alone, block)
    assert together.refreshes == alone.refreshes == 1
    assert together.get_state() == alone.get_state()


@pytest.mark.parametrize("length", [1, 99, 100, 101, 250])
def test_cusums_learning_together_equal_update_many(length):
    """``CUSUM.learn_columns``: columns shorter than, exactly as long as, and longer than what
    each reference still needs (those calibrated together, the rest as usual), a column with
    an absent value, and a detector already calibrated."""
    rng = np.random.default_rng(length)
    width = 5
    together = [CUSUM(reference_size=100) for _ in range(width)]
    alone = [CUSUM(reference_size=100) for _ in range(width)]
    warm = rng.normal(size=(40, width))
    warm[:, 4] = rng.normal(size=40) > 1.0  # a 0/1 stream (Bernoulli arms)
    for j in range(width):
        together[j].update_many(warm[:, j])
        alone[j].update_many(warm[:, j])
    extra = rng.normal(size=100)  # the first one calibrated already
    together[0].update_many(extra)
    alone[0].update_many(extra)
    assert together[0].calibrated
    block = rng.normal(size=(length, width))
    block[:, 4] = rng.normal(size=length) > 1.0
    block[length // 2, 3] = np.nan
    CUSUM.learn_columns(together, block)
    for j in range(width):
        alone[j].update_many(block[:, j])
        assert together[j].get_state() == alone[j].get_state(), j


def test_thresholds_do_not_depend_on_the_detectors_calibrated_beside_them():
    """References of different shapes calibrated in one call get, bit for bit, the thresholds
    each gets alone (each arm's Newton steps stop at its own convergence)."""
    rng = np.random.default_rng(1)
    draws = [
        lambda n: rng.normal(size=n),
        lambda n: (rng.random(n) < rng.uniform(0.01, 0.5)).astype(float),
        lambda n: rng.standard_t(2, size=n),
        lambda n: rng.exponential(size=n),
    ]
    differ = []
    for trial in range(12):
        streams = [draws[k](300) for k in rng.integers(0, len(draws), 6)]
        alone = []
        for values in streams:
            detector = CUSUM(reference_size=300)
            detector.update_many(values)
            alone.append(detector._h)
        together = [CUSUM(reference_size=300) for _ in streams]
        CUSUM.learn_columns(together, np.stack(streams, axis=1))
        assert all(d.calibrated for d in together)
        differ += [(trial, j) for j, d in enumerate(together) if d._h != alone[j]]
    assert not differ
