"""AutoencoderDrift with ``background=True``: training leaves the caller's thread, rows that
come meanwhile are scored once the weights are in, and the outcome equals training inline."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import detectors.autoencoder as autoencoder
from detectors import AutoencoderDrift
from streams.monitor import MonitorConfig

PARAMS = {"reference_size": 400, "hidden": 2, "epochs": 50, "target_arl": 50_000.0}


def _rows() -> np.ndarray:
    rng = np.random.default_rng(0)
    latent = rng.normal(0, 1, (700, 3))
    rows = latent @ rng.normal(0, 1, (3, 8)) + rng.normal(0, 0.1, (700, 8))
    rows[450:] += rng.normal(0, 0.6, (250, 8))  # the structure loosens
    return rows


@pytest.fixture
def held_trainer(monkeypatch):
    """The trainer thread waits for ``release.set()`` and records which thread it ran on."""
    release, ran_on = threading.Event(), []
    real = autoencoder._fit

    def gated(rows, params):
        ran_on.append(threading.current_thread().name)
        if threading.current_thread() is not threading.main_thread():  # inline ones run on
            assert release.wait(30)
        return real(rows, params)

    monkeypatch.setattr(autoencoder, "_fit", gated)
    return release, ran_on


def test_background_training_scores_the_rows_that_waited_like_inline_training(held_trainer):
    release, ran_on = held_trainer
    rows = _rows()
    inline = AutoencoderDrift(**PARAMS)
    inline_alarms = inline.update_many(rows)
    assert len(inline_alarms), "the stream must drift, or the comparison shows nothing"

    background = AutoencoderDrift(**PARAMS, background=True)
    assert background.update_many(rows[:500]).tolist() == []  # returns while training waits
    assert not background.trained and len(background._waiting) == 100
    release.set()
    background._training.result(timeout=60)
    assert ran_on[-1].startswith("driftline-autoencoder")
    alarms = background.update_many(rows[500:])
    assert background.trained and background._waiting == []
    # the same weights and the same errors in the same order: the same CUSUM
    assert background.statistic == pytest.approx(inline.statistic)
    assert background._cusum.n_detections == inline._cusum.n_detections
    assert len(alarms) >= 1


def test_a_checkpoint_taken_while_it_trains_restarts_the_training(held_trainer):
    release, _ = held_trainer
    rows = _rows()
    detector = AutoencoderDrift(**PARAMS, background=True)
    detector.update_many(rows[:450])
    restored = AutoencoderDrift.from_state(detector.get_state())
    assert len(restored._rows) == 400 and len(restored._waiting) == 50
    release.set()
    restored.update(rows[450])  # trains again (the future did not survive the checkpoint)
    restored._training.result(timeout=60)
    restored.update_many(rows[451:])
    inline = AutoencoderDrift(**PARAMS)
    inline.update_many(rows)
    assert restored.statistic == pytest.approx(inline.statistic)


def test_the_stream_worker_builds_it_to_train_in_the_background():
    config = MonitorConfig(vector_detectors=(("autoencoder", {}),))
    (detector,) = config.build(config.vector_detectors).values()
    assert detector.background is True
    kept = config.build((("autoencoder", {"background": False}),))
    assert kept["autoencoder"].background is False
