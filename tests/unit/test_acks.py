"""AckAfterFlush: messages acknowledged after the flush that holds them; timed flushes paced."""

from __future__ import annotations

import pytest

from contracts.settings import Settings
from streams.acks import AckAfterFlush
from streams.config_file import WorkerConfig


class _Message:
    acked = False

    def ack(self) -> None:
        self.acked = True


def _gate(took: list[float], answers: list[bool]) -> tuple[AckAfterFlush, list[float]]:
    """A gate on a fake clock whose flushes take ``took`` seconds each and answer ``answers``."""
    now = [0.0]

    async def flush() -> bool:
        now[0] += took.pop(0)
        return answers.pop(0)

    return AckAfterFlush(flush, max_held=100, clock=lambda: now[0]), now


async def test_a_long_flush_is_followed_by_three_times_its_length_of_rest():
    gate, now = _gate([4.0, 0.1], [True, True])
    held = [_Message()]
    await gate.hold(held)
    assert gate.rested(0.25)  # no flush yet
    await gate.flush()  # 0 -> 4 s
    assert held[0].acked and gate.last_took_s == 4.0
    now[0] = 4.0 + 11.9
    assert not gate.rested(0.25)  # flushes would take more than a quarter of the time
    assert gate.rested(0.5)  # ... but not more than half
    now[0] = 4.0 + 12.0
    assert gate.rested(0.25)
    await gate.flush()  # a short flush: the next timed one may follow at once
    now[0] += 0.31  # 3 x 0.1 s
    assert gate.rested(0.25)


async def test_a_failed_flush_is_paced_too_and_keeps_its_messages():
    gate, now = _gate([2.0], [False])
    held = [_Message(), _Message()]
    await gate.hold(held)
    assert not await gate.flush()
    assert gate.held == 2 and not any(m.acked for m in held)
    now[0] = 2.0 + 5.0
    assert not gate.rested(0.25)


def test_the_flush_settings_are_validated_and_read_from_the_config_file(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_FLUSH_SHARE", "0.5")
    assert Settings.from_env().flush_share == 0.5
    for bad in ("0", "1.5", "x"):
        monkeypatch.setenv("DRIFTLINE_FLUSH_SHARE", bad)
        with pytest.raises(ValueError, match="DRIFTLINE_FLUSH_SHARE"):
            Settings.from_env()
    monkeypatch.delenv("DRIFTLINE_FLUSH_SHARE")
    config = WorkerConfig.from_toml("[limits]\nflush_s = 2.5\nflush_share = 0.1\n")
    settings = config.settings(Settings.from_env())
    assert (settings.flush_s, settings.flush_share) == (2.5, 0.1)
