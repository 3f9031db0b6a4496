"""The monitoring worker as a child process (the demo and the benchmarks start one).

proc = start_worker(settings, log_path)
await wait_until_ready(log_path, proc)
...
stop_worker(proc)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from contracts.settings import Settings

READY = "driftline worker ready"


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen:
    """``driftline worker`` with these settings, its output in ``log_path``."""
    env = {**os.environ, **settings.to_env()}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "driftline.cli", "worker", "--loglevel", "info"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


async def wait_until_ready(log_path: Path, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"the monitoring worker exited (status {proc.returncode}); see {log_path}"
            )
        if log_path.exists() and READY in log_path.read_text(errors="replace"):
            return
        await asyncio.sleep(0.25)
    raise RuntimeError(
        f"the monitoring worker did not become ready in {timeout:.0f}s; see {log_path}"
    )


def stop_worker(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
