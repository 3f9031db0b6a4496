"""Layout rules that keep the packages apart."""

from __future__ import annotations

import subprocess
import sys


def _loaded(imports: str, packages: tuple[str, ...]) -> list[str]:
    """The modules of ``packages`` that a fresh interpreter has loaded after ``imports``."""
    code = (
        f"{imports}\n"
        "import sys\n"
        f"packages = {packages!r}\n"
        "inside = tuple(p + '.' for p in packages)\n"
        "print(','.join(sorted(m for m in sys.modules if m in packages or m.startswith(inside))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return [m for m in out.strip().split(",") if m]


def test_detectors_learners_and_bridges_never_import_faust():
    imports = (
        "import pkgutil, importlib, detectors, learners, bridges\n"
        "for pkg in (detectors, learners, bridges):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "import contracts.events, contracts.alarms, streams.monitor, streams.runtime, streams.producer"
    )
    bad = _loaded(imports, ("faust",))
    assert not bad, f"faust was imported by: {bad}"


def test_the_worker_loads_neither_torch_nor_scipy_stats():
    """torch comes with a torch-based detector only, and scipy.stats (about 70 MB of RSS at
    import, against about 20 for scipy.special, which gives the same quantiles) not at all."""
    bad = _loaded("import streams.app, streams.agents, streams.monitor", ("torch", "scipy.stats"))
    assert not bad, f"the worker imported: {bad}"
