"""Layout rules that keep the packages apart."""

from __future__ import annotations

import subprocess
import sys


def test_detectors_learners_and_bridges_never_import_faust():
    code = (
        "import sys, pkgutil, importlib, detectors, learners, bridges\n"
        "for pkg in (detectors, learners, bridges):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "import contracts.events, contracts.alarms, streams.monitor, streams.runtime, streams.producer\n"
        "bad = sorted(m for m in sys.modules if m == 'faust' or m.startswith('faust.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "", f"faust was imported by: {out}"


def test_the_worker_loads_neither_torch_nor_scipy_stats():
    """torch comes with a torch-based detector only, and scipy.stats (about 70 MB of RSS at
    import, against about 20 for scipy.special, which gives the same quantiles) not at all."""
    code = (
        "import sys, streams.app, streams.agents, streams.monitor\n"
        "heavy = ('torch', 'scipy.stats')\n"
        "bad = sorted(m for m in sys.modules if m in heavy or m.startswith(('torch.', 'scipy.stats.')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "", f"the worker imported: {out}"
