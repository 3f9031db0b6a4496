"""The learner's staleness check: its closed-form CUSUM, its baseline, and what it reads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from learners.policy import UpdatePolicy
from learners.staleness import StalenessCheck, assess


def _first_crossing_by_recursion(errors, p0, allowance, threshold):
    """(where it fires or None, whether some statistic came within 1e-9 of the threshold: a
    tie that float rounding may decide either way in the closed form)."""
    statistic, tie = 0.0, False
    for n, error in enumerate(errors, start=1):
        statistic = max(0.0, statistic + error - p0 - allowance)
        tie = tie or abs(statistic - threshold) < 1e-9
        if statistic > threshold:
            return n, tie
    return None, tie


@settings(max_examples=200, deadline=None)
@given(
    errors=st.lists(st.sampled_from([0.0, 1.0]), max_size=300),
    p0=st.floats(0.0, 0.9),
    allowance=st.floats(0.01, 0.5),
    threshold=st.floats(0.5, 10.0),
)
def test_the_closed_form_fires_where_the_recursion_does(errors, p0, allowance, threshold):
    check = StalenessCheck(20, allowance, threshold)
    expected, tie = _first_crossing_by_recursion(errors, p0, allowance, threshold)
    assume(not tie)
    assert check.first_crossing(np.array(errors), p0) == expected


def _rows(version, errors, t0=0.0):
    return [
        {"model_version": version, "prediction": "1", "label": "0" if e else "1",
         "label_time": t0 + i}
        for i, e in enumerate(errors)
    ]  # fmt: skip


def test_only_the_champion_s_own_rows_count_and_the_cusum_reads_after_the_last_attempt():
    check = StalenessCheck(baseline_rows=20, allowance=0.05, threshold=2.0)
    good, bad = [0] * 20, [1] * 10
    rows = _rows("v2", good) + _rows("v2", bad, t0=20.0)
    rows += _rows("v1", [1] * 50, t0=-100.0)  # the predecessor's errors are not v2's baseline
    found = assess(check, rows, "v2")
    assert found.fired and found.baseline == 0.0 and found.baseline_until == 19.0
    assert found.label_time == 22.0  # three errors: 3 x 0.95 > 2
    # after an attempt that read up to time 27, only rows after it count: not enough yet
    later = assess(check, rows, "v2", after=27.0)
    assert not later.fired and later.rows == 2 and later.recent == 1.0
    assert assess(check, rows + _rows("v2", [1], t0=30.0), "v2", after=27.0).fired
    # too few rows of the version for a baseline: nothing to say
    assert assess(check, rows, "v3") is None
    # a baseline known from before (its rows have left the capped list) is used as it was
    kept = assess(check, _rows("v2", bad, t0=20.0), "v2", known=(0.0, 19.0))
    assert kept.fired and kept.label_time == 22.0


def test_bad_settings_are_refused_by_the_policy():
    assert UpdatePolicy().staleness() is None  # off by default
    assert UpdatePolicy(staleness_baseline_rows=200).staleness() == StalenessCheck(200)
    with pytest.raises(ValueError, match="at least 20"):
        UpdatePolicy(staleness_baseline_rows=5).validate()
    with pytest.raises(ValueError, match="allowance"):
        UpdatePolicy(staleness_baseline_rows=200, staleness_allowance=1.5).validate()
