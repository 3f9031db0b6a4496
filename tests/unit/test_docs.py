"""Docs that must match the code: every environment variable the code reads is in
docs/config.md, and every signal kind an alarm can carry has a runbook section."""

from __future__ import annotations

import re
from pathlib import Path

from contracts.alarms import SIGNAL_KINDS

REPO = Path(__file__).resolve().parents[2]
SOURCES = ["contracts", "streams", "learners", "bridges", "driftline", "detectors"]


def _variables_in_code() -> set[str]:
    found = set()
    files = [p for d in SOURCES for p in (REPO / d).rglob("*.py")]
    files += [REPO / "deploy" / "stack.sh", REPO / "Makefile"]
    for path in files:
        found |= set(re.findall(r"DRIFTLINE_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
    # a variable name wrapped across a docstring table's lines
    return {v for v in found if v != "DRIFTLINE_MAX_MESSAGE"}


def test_every_variable_the_code_reads_is_documented():
    documented = set(re.findall(r"`(DRIFTLINE_[A-Z0-9_]+)`", (REPO / "docs/config.md").read_text()))
    code = _variables_in_code()
    assert len(code) > 30
    assert not sorted(code - documented), f"not in docs/config.md: {sorted(code - documented)}"


def test_every_alarm_kind_has_a_runbook_section():
    runbook = (REPO / "docs/runbook.md").read_text()
    missing = [k for k in SIGNAL_KINDS if f'<a id="{k}"></a>' not in runbook]
    assert not missing, missing
