"""The worker's part of the driftline config file (``DRIFTLINE_CONFIG``, TOML): limits, every
model's monitor, and per-model overrides.  The learner reads the ``[policy]`` table of the same
file (:mod:`learners.policy`).  Errors name the table and the key.

.. code-block:: toml

    [limits]                      # worker limits
    max_models = 10000
    batch_max = 500

    [monitor]                     # every model's monitor
    latency_slo_ms = 250
    false_alarm_events = 1_000_000
    resolve_after_s = 600
    feature_detectors = [["cusum", {}]]

    [models.churn-model]          # one model: the same keys as [monitor]
    latency_slo_ms = 120
    output_rules = [{name = "p_in_range", kind = "range", field = "score", low = 0, high = 1}]

A model the file does not name gets ``[monitor]`` (or the built-in defaults,
:class:`~streams.monitor.MonitorConfig`).  A key the file sets wins over its environment
variable (``DRIFTLINE_LATENCY_SLO_MS``, ``DRIFTLINE_BATCH_MAX``, ...): the file is the record of
what runs.

>>> config = WorkerConfig.from_toml('''
... [monitor]
... latency_slo_ms = 300
... [models.fraud]
... false_alarm_events = 5e6
... ''')
>>> config.for_model("fraud").false_alarm_events, config.for_model("churn").false_alarm_events
(5000000.0, 1000000.0)
>>> config.for_model("fraud").slo_detectors
(('latency_slo', {'slo_ms': 300.0}),)
>>> WorkerConfig.from_toml("[models.x]\\nlatancy_slo_ms = 1")
Traceback (most recent call last):
...
ValueError: [models.x] unknown key 'latancy_slo_ms'; known: alarm_cooldown, ...
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from contracts.settings import CONFIG_TABLES, Settings
from detectors.base import REGISTRY
from detectors.output_rules import parse_rules
from streams.monitor import MonitorConfig

#: [limits] key (a Settings field, see contracts/settings.py) -> its type
LIMITS = {
    "max_models": int,
    "idle_evict_s": float,
    "batch_max": int,
    "batch_events": int,
    "batch_wait_s": float,
    "flush_s": float,
    "flush_share": float,
    "max_message_bytes": int,
    "join_memory": int,
    "max_future_s": float,
    "series_every_s": float,
    "series_keep": int,
}
DETECTOR_KEYS = tuple(
    f.name
    for f in fields(MonitorConfig)
    if f.name.endswith("_detectors") and f.name != "slo_detectors"
)
NUMBERS = {
    "low_confidence": float,
    "alarm_cooldown": int,
    "versions_kept": int,
    "max_features": int,
    "join_ttl_s": float,
    "join_max_pending": int,
    "false_alarm_events": float,
    "resolve_after_s": float,
    "incident_window_s": float,
    "input_refresh_every": int,
}
MONITOR_KEYS = sorted(
    [*NUMBERS, *DETECTOR_KEYS, "latency_slo_ms", "positive_label", "output_rules"]
)


def _number(where: str, key: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where} {key} must be a number, got {value!r}")
    if kind is int and float(value) != int(value):
        raise ValueError(f"{where} {key} must be a whole number, got {value!r}")
    if value < 0:
        raise ValueError(f"{where} {key} must be >= 0, got {value!r}")
    return kind(value)


def _detectors(where: str, key: str, value: Any) -> tuple[tuple[str, dict[str, Any]], ...]:
    specs = []
    for item in value if isinstance(value, list) else [None]:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], dict)):
            raise ValueError(f'{where} {key}: write a list of ["name", {{params}}] pairs')
        name, params = item
        if name not in REGISTRY:
            raise ValueError(f"{where} {key}: unknown detector {name!r}; known: {sorted(REGISTRY)}")
        try:
            REGISTRY[name](**params)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where} {key}: {name} {params}: {exc}") from None
        specs.append((name, params))
    return tuple(specs)


def monitor_config(table: dict[str, Any], base: MonitorConfig, where: str) -> MonitorConfig:
    """``base`` with the keys of a ``[monitor]`` or ``[models.<id>]`` table."""
    if not isinstance(table, dict):
        raise ValueError(f"{where} must be a table")
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key in NUMBERS:
            changes[key] = _number(where, key, value, NUMBERS[key])
        elif key in DETECTOR_KEYS:
            changes[key] = _detectors(where, key, value)
        elif key == "latency_slo_ms":
            slo = _number(where, key, value, float)
            changes["slo_detectors"] = (("latency_slo", {"slo_ms": slo}),)
        elif key == "positive_label":
            changes[key] = str(value)
        elif key == "output_rules":
            if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
                raise ValueError(f"{where} output_rules must be a list of tables")
            try:
                parse_rules(value)
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{where} output_rules: {exc}") from None
            changes[key] = tuple(value)
        else:
            raise ValueError(f"{where} unknown key {key!r}; known: {', '.join(MONITOR_KEYS)}")
    if changes.get("false_alarm_events") == 0:
        changes["false_alarm_events"] = None  # 0: each detector keeps its own setting
    if changes.get("input_refresh_every") == 0:
        changes["input_refresh_every"] = None
    return replace(base, **changes)


@dataclass(frozen=True)
class WorkerConfig:
    default: MonitorConfig = field(default_factory=MonitorConfig)
    models: dict[str, MonitorConfig] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)  # Settings field -> value

    def for_model(self, model_id: str) -> MonitorConfig:
        return self.models.get(model_id, self.default)

    def settings(self, settings: Settings) -> Settings:
        """``settings`` with the file's limits."""
        return replace(settings, **self.limits)

    @classmethod
    def from_toml(cls, text: str, base: MonitorConfig | None = None) -> WorkerConfig:
        doc = tomllib.loads(text)
        unknown = set(doc) - set(CONFIG_TABLES)
        if unknown:
            raise ValueError(
                f"unknown tables {sorted(unknown)}: use {', '.join(f'[{t}]' for t in CONFIG_TABLES)}"
            )
        limits = {}
        for key, value in doc.get("limits", {}).items():
            if key not in LIMITS:
                raise ValueError(f"[limits] unknown key {key!r}; known: {', '.join(LIMITS)}")
            limits[key] = _number("[limits]", key, value, LIMITS[key])
        default = monitor_config(doc.get("monitor", {}), base or MonitorConfig(), "[monitor]")
        models = doc.get("models", {})
        if not isinstance(models, dict):
            raise ValueError("[models] must hold one table per model: [models.<id>]")
        return cls(
            default,
            {m: monitor_config(t, default, f"[models.{m}]") for m, t in models.items()},
            limits,
        )

    @classmethod
    def from_file(cls, path: str | Path, base: MonitorConfig | None = None) -> WorkerConfig:
        try:
            return cls.from_toml(Path(path).read_text(), base)
        except (OSError, tomllib.TOMLDecodeError, ValueError) as exc:
            raise ValueError(f"config file {path}: {exc}") from None
