"""``driftline status``, ``alarms`` and ``replay`` as an operator runs them, against the real
worker, Kafka and Redis."""

from __future__ import annotations

import json
import subprocess
import time

import numpy as np
import pytest

from tests.integration.conftest import read_topic
from tests.integration.synthetic import play, set_reference
from tests.integration.test_cli import _cli as run_cli

MODEL = "ops-model"


def _cli(settings, *args: str) -> subprocess.CompletedProcess:
    return run_cli(settings, settings.blob_store, *args)


@pytest.fixture(scope="module")
def traffic(settings, worker):
    """2,000 normal then 3,000 shifted events through the real worker, until alarms are out."""
    import asyncio

    async def run():
        rng = np.random.default_rng(3)
        set_reference(settings, MODEL, rng)
        start = time.time() - 600
        await play(settings, MODEL, rng, 2000, 0.0, start)
        await play(settings, MODEL, rng, 3000, 3.0, start + 2.0)
        return await read_topic(
            settings,
            settings.topics.alarms,
            lambda rs: sum(MODEL.encode() in r.value for r in rs) >= 2,
            60,
        )

    return asyncio.run(run())


def test_status_lists_the_model_its_open_alarms_and_the_consumer_lag(settings, traffic):
    deadline = time.monotonic() + 30
    while True:  # the worker flushes to Redis every second and commits after it
        out = _cli(settings, "status", "--json")
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        [model] = [m for m in report["models"] if m["model"] == MODEL]
        lag = [
            r
            for r in report["lag"]
            if r["group"] == settings.app_id and r["topic"] == settings.topics.inferences
        ]
        if model["inferences"] == 5000 and all(r["lag"] == 0 for r in lag if r["end"]):
            break
        assert time.monotonic() < deadline, (model, lag)
        time.sleep(1)
    assert model["monitored"] and model["open_alarms"], model
    assert model["detectors"] >= 10 and model["nearest_threshold"][1] >= 0, model
    assert sum(r["end"] for r in lag) == 5000 // 200  # envelopes of 200 events
    table = _cli(settings, "status")
    assert MODEL in table.stdout and "consumer lag" in table.stdout


def test_alarms_tail_with_filters(settings, traffic):
    out = _cli(settings, "alarms", "--model", MODEL, "--json", "--last", "1000")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events and {e["data"]["model"] for e in events} == {MODEL}
    kinds = {e["data"]["signal"]["kind"] for e in events}
    first = sorted(kinds)[0]
    only = _cli(settings, "alarms", "--model", MODEL, "--kind", first, "--json", "--last", "1000")
    assert {json.loads(x)["data"]["signal"]["kind"] for x in only.stdout.splitlines()} == {first}
    human = _cli(settings, "alarms", "--model", MODEL, "--last", "1000")
    assert "FIRING" in human.stdout and MODEL in human.stdout
    none = _cli(settings, "alarms", "--model", "no-such-model")
    assert none.returncode == 0 and "no alarm matched" in none.stderr
    bad = _cli(settings, "alarms", "--severity", "loud")
    assert bad.returncode == 2 and "unknown severity" in bad.stderr


def test_replay_of_a_topic_range_finds_the_shift(settings, traffic, tmp_path):
    report_path = tmp_path / "replay.json"
    out = _cli(
        settings,
        "replay",
        f"{settings.topics.inferences}:0-1000000",
        "--model",
        MODEL,
        "--report",
        str(report_path),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(report_path.read_text())
    assert report["inferences"] == 5000
    assert any(a["inference"] >= 2000 for a in report["alarms"]), report["alarms"]
    assert not [a for a in report["alarms"] if a["inference"] < 2000]
    bad = _cli(settings, "replay", "nonsense")
    assert bad.returncode == 2
