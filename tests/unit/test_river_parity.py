"""driftline's ADWIN and Page-Hinkley give river's detections on the same streams."""

from __future__ import annotations

import numpy as np
import pytest
from river import drift

from detectors import ADWIN, DDM, EDDM, HDDM_A, HDDM_W, PageHinkley


def _streams():
    rng = np.random.default_rng(42)
    yield "gauss-shift", np.concatenate([rng.normal(0, 1, 4000), rng.normal(0.8, 1, 4000)])
    yield "student-t", rng.standard_t(3, 8000)
    yield "ar1", _ar1(rng, 8000)
    yield "bernoulli", rng.binomial(1, np.r_[np.full(4000, 0.1), np.full(4000, 0.3)]).astype(float)


def _ar1(rng, n, phi=0.5):
    out = np.empty(n)
    prev = 0.0
    for i, e in enumerate(rng.normal(0, 1, n)):
        prev = phi * prev + e
        out[i] = prev
    return out


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(ADWIN, drift.ADWIN), (PageHinkley, drift.PageHinkley)],
    ids=["adwin", "page_hinkley"],
)
@pytest.mark.parametrize(
    ("name", "values"), list(_streams()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_same_detections_as_river(ours, theirs, name, values):
    a, b = ours(), theirs()
    mine, river_s = [], []
    for i, x in enumerate(values):
        a.update(float(x))
        b.update(float(x))
        if a.drift_detected:
            mine.append(i)
        if b.drift_detected:
            river_s.append(i)
    assert mine == river_s
    if name != "student-t":
        assert river_s, "the stream should make river fire at least once"


def _error_streams():
    rng = np.random.default_rng(7)
    for name, rates in {
        "rate-up": (0.1, 0.3),
        "rate-gradual": (0.05, 0.15),
        "rate-down": (0.3, 0.05),
    }.items():
        p = np.r_[
            np.full(3000, rates[0]), np.linspace(rates[0], rates[1], 2000), np.full(3000, rates[1])
        ]
        yield name, rng.binomial(1, p).astype(float)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (DDM, drift.binary.DDM),
        (EDDM, drift.binary.EDDM),
        (HDDM_A, drift.binary.HDDMA),
        (HDDM_W, drift.binary.HDDMW),
        (lambda: HDDM_A(two_sided_test=True), lambda: drift.binary.HDDMA(two_sided_test=True)),
        (lambda: HDDM_W(two_sided_test=True), lambda: drift.binary.HDDMW(two_sided_test=True)),
    ],
    ids=["ddm", "eddm", "hddm_a", "hddm_w", "hddm_a-two-sided", "hddm_w-two-sided"],
)
@pytest.mark.parametrize(
    ("name", "values"), list(_error_streams()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_same_error_stream_detections_as_river(ours, theirs, name, values):
    a, b = ours(), theirs()
    mine, warnings, river_s, river_w = [], [], [], []
    for i, x in enumerate(values):
        a.update(x)
        b.update(x)
        if a.drift_detected:
            mine.append(i)
        if a.warning_detected:
            warnings.append(i)
        if b.drift_detected:
            river_s.append(i)
        if b.warning_detected:
            river_w.append(i)
    assert mine == river_s
    assert warnings == river_w
    if name == "rate-up":
        assert river_s, "the stream should make river fire at least once"
