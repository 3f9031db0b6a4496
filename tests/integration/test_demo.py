"""`driftline demo` (what `make demo` runs) closes the loop on the real stack: exit status 0
means each of its three scenes ended as it should (drift fixed and promoted, noise refused by
the gate, a bad rollout rolled back).  A change that silences the alarms a scene needs (an alarm
book that took version 2's errors for a repeat of version 1's did) fails here."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.integration.conftest import REPO


def test_the_demo_closes_the_loop(settings):
    env = {**os.environ, **settings.to_env()}
    for name in ("DRIFTLINE_TOPIC_PREFIX", "DRIFTLINE_KEY_PREFIX", "DRIFTLINE_APP_ID"):
        env.pop(name, None)  # the demo names its own models and deployment
    proc = subprocess.run(
        [sys.executable, "-m", "driftline.cli", "demo"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "the loop closed" in proc.stdout
