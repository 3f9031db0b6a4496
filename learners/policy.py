"""Per-model update policy: which alarms trigger which strategy, and the limits around it.

A policy file is TOML (``DRIFTLINE_POLICY`` points at it); a ``[default]`` table applies to every
model and ``[models.<id>]`` tables override it key by key.  Python callers build
:class:`UpdatePolicy` directly.

.. code-block:: toml

    [default]
    min_labelled = 300            # labelled rows from after the alarm before training starts
    pre_trigger_rows = 0          # also use this many rows from just before the alarm
    deadline_event_s = 86400      # give up (and say so) when the stream's event time passes this
    cooldown_s = 600              # no new update this long after a promotion or rollback
    periodic_retrain_s = 0        # 0: off; else a scheduled "retrain" every so many seconds
    bake_samples = 200            # labelled rows watched after a promotion
    bake_max_error_increase = 0.05
    shadow_samples = 0            # >0: the candidate first scores live traffic beside the champion
    retries_while_open = 0        # >0: a refused update is tried again once min_labelled newer rows
                                  # came, on every row since its alarm, while the alarm stays
                                  # open, at most this many times
    update_on_repeat = true       # an open alarm acted on that fires again (its signal moved
                                  # again) starts a new update on the rows from then on
    staleness_baseline_rows = 0   # >0: the learner's own trigger (learners/staleness.py): the
                                  # champion's error rate against its own first rows, running
                                  # triggers.staleness (else the error alarms' strategy); for
                                  # concepts that move all the time
    staleness_allowance = 0.05    # its CUSUM's allowance (error-rate points)
    staleness_threshold = 5.0     # and threshold

    [default.triggers]            # alarm signal kind -> strategy spec ("none": acknowledge only)
    error = {name = "fine_tune", freeze = "all_but_head"}
    staleness = "retrain"         # the staleness trigger's (absent: the error alarms')
    performance = "fine_tune"
    feature = "none"

    [default.gate]
    min_gain = 0.01

    [models.churn.triggers]
    error = "retrain"

Alarm kinds that no strategy can fix (``system``, ``rule``, ``security``, ``rollout``) are
never triggers, whatever a file says: a latency alarm does not call for new weights.  Neither are
alarms below ``min_severity`` (default ``warning``): an error rate that *fell* is reported as
``info``.

>>> policy = PolicySet.from_toml('''
... [default]
... min_labelled = 100
... [models.churn.triggers]
... error = "retrain"
... ''')
>>> policy.for_model("churn").strategy_for("error"), policy.for_model("churn").min_labelled
({'name': 'retrain'}, 100)
>>> policy.for_model("other").strategy_for("error")
{'name': 'fine_tune', 'freeze': 'all_but_head'}
>>> policy.for_model("other").strategy_for("system") is None
True
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from learners.gate import GateConfig
from learners.staleness import StalenessCheck
from learners.strategies.base import strategy_from_spec

NEVER_TRIGGER = frozenset({"system", "rule", "security", "rollout"})
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}

DEFAULT_TRIGGERS: dict[str, Any] = {
    "error": {"name": "fine_tune", "freeze": "all_but_head"},
    "performance": {"name": "fine_tune", "freeze": "all_but_head"},
    "score": "none",
    "output": "none",
    "feature": "none",
    "data": "none",
}


@dataclass(frozen=True)
class UpdatePolicy:
    triggers: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_TRIGGERS))
    min_labelled: int = 300
    max_rows: int = 5000
    pre_trigger_rows: int = 0  # also train on this many rows from just before the trigger
    deadline_event_s: float = 86_400.0
    cooldown_s: float = 60.0
    periodic_retrain_s: float = 0.0
    periodic_strategy: Any = "retrain"
    bake_samples: int = 200
    bake_max_error_increase: float = 0.05
    shadow_samples: int = 0
    retries_while_open: int = 0  # see the module docstring; a resolution of the alarm stops them
    update_on_repeat: bool = True  # see the module docstring and learners/worker.py
    staleness_baseline_rows: int = 0  # 0: off; see learners/staleness.py
    staleness_allowance: float = 0.05
    staleness_threshold: float = 5.0
    gate: GateConfig = field(default_factory=GateConfig)
    fallback: Any = "retrain"  # for a model the trigger's strategy cannot update (e.g. river)
    min_severity: str = "warning"  # "info" alarms (e.g. an error rate that fell) never trigger

    def strategy_for(self, signal_kind: str, severity: str = "critical") -> dict[str, Any] | None:
        """The strategy spec an alarm of this kind and severity triggers, or None."""
        if signal_kind in NEVER_TRIGGER or SEVERITY_RANK.get(severity, 0) < SEVERITY_RANK.get(
            self.min_severity, 1
        ):
            return None
        spec = self.triggers.get(signal_kind, "none")
        if spec in (None, "none", ""):
            return None
        return {"name": spec} if isinstance(spec, str) else dict(spec)

    def validate(self) -> UpdatePolicy:
        for kind in self.triggers:
            spec = self.strategy_for(kind)
            if spec is not None:
                strategy_from_spec(spec)  # raises ValueError naming the bad strategy
        if self.min_labelled < 20:
            raise ValueError("min_labelled must be at least 20")
        self.staleness()  # raises ValueError on bad staleness settings
        if self.min_severity not in SEVERITY_RANK:
            raise ValueError(f"min_severity must be one of {sorted(SEVERITY_RANK)}")
        if self.bake_samples < 0 or self.shadow_samples < 0 or self.retries_while_open < 0:
            raise ValueError("bake_samples, shadow_samples and retries_while_open must be >= 0")
        return self

    def staleness(self) -> StalenessCheck | None:
        """The learner's own staleness trigger, or None when it is off."""
        if self.staleness_baseline_rows == 0:
            return None
        return StalenessCheck(
            self.staleness_baseline_rows, self.staleness_allowance, self.staleness_threshold
        )

    def staleness_strategy(self) -> dict[str, Any] | None:
        """What the staleness trigger runs: ``triggers.staleness`` if the policy names one,
        else the error alarms' strategy."""
        return self.strategy_for("staleness" if "staleness" in self.triggers else "error")

    def merged(self, doc: dict[str, Any]) -> UpdatePolicy:
        """This policy with the keys of ``doc`` (a TOML table) overriding."""
        known = {f.name for f in fields(self)}
        unknown = set(doc) - known
        if unknown:
            raise ValueError(f"unknown policy keys {sorted(unknown)}; known: {sorted(known)}")
        changes = dict(doc)
        if "triggers" in changes:
            changes["triggers"] = {**self.triggers, **changes["triggers"]}
        if "gate" in changes:
            changes["gate"] = GateConfig.from_dict({**self.gate.__dict__, **changes["gate"]})
        return replace(self, **changes).validate()


@dataclass(frozen=True)
class PolicySet:
    default: UpdatePolicy = field(default_factory=UpdatePolicy)
    models: dict[str, UpdatePolicy] = field(default_factory=dict)

    def for_model(self, model_id: str) -> UpdatePolicy:
        return self.models.get(model_id, self.default)

    @classmethod
    def from_toml(cls, text: str) -> PolicySet:
        return cls.from_doc(tomllib.loads(text))

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> PolicySet:
        unknown = set(doc) - {"default", "models"}
        if unknown:
            raise ValueError(
                f"unknown policy tables {sorted(unknown)}: use [default] and [models.<id>]"
            )
        default = UpdatePolicy().merged(doc.get("default", {}))
        models = {m: default.merged(table) for m, table in doc.get("models", {}).items()}
        return cls(default, models)

    @classmethod
    def from_config_file(cls, path: str | Path) -> PolicySet | None:
        """The ``[policy]`` table of the driftline config file (``[policy.default]``,
        ``[policy.models.<id>]``); None when the file has none."""
        from contracts.settings import CONFIG_TABLES

        try:
            doc = tomllib.loads(Path(path).read_text())
            unknown = set(doc) - set(CONFIG_TABLES)
            if unknown:
                raise ValueError(f"unknown tables {sorted(unknown)}")
            if "policy" not in doc:
                return None
            return cls.from_doc(doc["policy"])
        except (OSError, tomllib.TOMLDecodeError, ValueError) as exc:
            raise ValueError(f"config file {path} [policy]: {exc}") from None

    @classmethod
    def from_file(cls, path: str | Path | None) -> PolicySet:
        if not path:
            return cls()
        try:
            return cls.from_toml(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError, ValueError) as exc:
            raise ValueError(f"policy file {path}: {exc}") from None
