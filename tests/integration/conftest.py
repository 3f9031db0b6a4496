"""Integration fixtures: the real Kafka broker and Redis server, started by deploy/stack.sh.

Nothing here is mocked and nothing is skipped: if the stack cannot start, every integration
test errors with the script's output.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer

from contracts.settings import Settings
from streams.topics import drop_topics, ensure_topics

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack() -> dict[str, str]:
    proc = subprocess.run(
        ["bash", str(REPO / "deploy" / "stack.sh"), "start"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"deploy/stack.sh start failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    env = subprocess.run(
        ["bash", str(REPO / "deploy" / "stack.sh"), "env"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    values = dict(
        line.removeprefix("export ").split("=", 1) for line in env.splitlines() if "=" in line
    )
    return {
        "KAFKA_BOOTSTRAP_SERVERS": values["KAFKA_BOOTSTRAP_SERVERS"],
        "REDIS_URL": values["REDIS_URL"],
    }


@pytest.fixture(scope="module")
def settings(stack) -> Settings:
    """Fresh topics, Redis keys and consumer groups for each test module."""
    run = f"it-{uuid.uuid4().hex[:8]}"
    s = Settings(
        kafka_bootstrap=stack["KAFKA_BOOTSTRAP_SERVERS"],
        redis_url=stack["REDIS_URL"],
        topic_prefix=run,
        key_prefix=run,
        app_id=run,
    )
    asyncio.run(ensure_topics(s))
    yield s
    client = redis.Redis.from_url(s.redis_url)
    keys = list(client.scan_iter(match=f"{run}:*", count=1000))
    if keys:
        client.delete(*keys)
    # every topic a module made starts with its run prefix (Faust's own ones too); leftovers
    # make the broker's start-up slower with every CI run on a machine whose cache persists
    asyncio.run(drop_topics(s, run))


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen:
    """Start the real monitoring worker (``driftline worker``) and wait until it consumes."""
    env = {**os.environ, **settings.to_env()}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "driftline.cli", "worker"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    deadline = time.monotonic() + 120
    while "driftline worker ready" not in log_path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(
                f"monitoring worker did not start:\n{log_path.read_text(errors='replace')[-4000:]}"
            )
        time.sleep(0.2)
    return proc


def stop_worker(proc: subprocess.Popen, log_path: Path) -> None:
    """Stop it as an operator would (SIGTERM), and require that it stops by itself (a
    deployment's grace period is about 30 s) with no traceback logged."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
        pytest.fail(
            "the worker did not stop within 30 s of SIGTERM:\n"
            + log_path.read_text(errors="replace")[-4000:]
        )
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]


@pytest.fixture(scope="module")
def worker(settings, tmp_path_factory) -> subprocess.Popen:
    """The real monitoring worker as a subprocess, for the whole test module."""
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    proc = start_worker(settings, log_path)
    yield proc
    stop_worker(proc, log_path)


async def read_topic(
    settings: Settings, topic: str, done: Callable[[list], bool], timeout: float = 60.0
) -> list:
    """Read ``topic`` from the beginning until ``done(records)`` or the timeout; return the records."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.bootstrap_list, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done(records):
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@contextlib.asynccontextmanager
async def running(worker) -> AsyncIterator[None]:
    """``worker.run(stop)`` (a learner, a bridge) as a task for the block; stopped after it."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
