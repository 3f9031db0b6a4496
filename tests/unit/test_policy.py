"""Update policies: triggers per alarm kind, limits, clear errors for bad files."""

from __future__ import annotations

import pytest

from learners.policy import NEVER_TRIGGER, PolicySet, UpdatePolicy


def test_latency_rule_and_security_alarms_never_trigger_an_update():
    policy = UpdatePolicy(triggers={kind: "retrain" for kind in NEVER_TRIGGER | {"error"}})
    for kind in NEVER_TRIGGER:
        assert policy.strategy_for(kind) is None
    assert policy.strategy_for("error") == {"name": "retrain"}


def test_feature_drift_alone_does_not_retrain_by_default():
    assert UpdatePolicy().strategy_for("feature") is None
    assert UpdatePolicy().strategy_for("error")["name"] == "fine_tune"


def test_per_model_tables_override_the_default_key_by_key(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(
        "[default]\nmin_labelled = 400\ncooldown_s = 30\n[default.gate]\nmin_gain = 0.05\n"
        "[models.fraud]\nshadow_samples = 100\n[models.fraud.triggers]\nfeature = 'online'\n"
    )
    policies = PolicySet.from_file(path)
    fraud = policies.for_model("fraud")
    assert fraud.min_labelled == 400 and fraud.cooldown_s == 30 and fraud.shadow_samples == 100
    assert fraud.gate.min_gain == 0.05
    assert fraud.strategy_for("feature") == {"name": "online"}
    assert fraud.strategy_for("error")["name"] == "fine_tune"  # inherited trigger
    assert policies.for_model("churn").shadow_samples == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[default]\nmin_labeled = 3\n", "unknown policy keys"),
        ("[default.triggers]\nerror = 'warp'\n", "unknown strategy 'warp'"),
        ("[defaults]\n", "unknown policy tables"),
        ("[default]\nmin_labelled = 5\n", "at least 20"),
        ("[default.gate]\nalpha_ = 1\n", "unknown gate settings"),
        ("[default\n", "policy file"),
    ],
)
def test_bad_policy_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        PolicySet.from_file(path)
    assert str(path) in str(info.value)


def test_info_alarms_never_trigger_an_update():
    policy = UpdatePolicy()
    assert policy.strategy_for("error", "info") is None
    assert policy.strategy_for("error", "warning") is not None
    assert UpdatePolicy(min_severity="critical").strategy_for("error", "warning") is None
    with pytest.raises(ValueError, match="min_severity"):
        UpdatePolicy().merged({"min_severity": "loud"})


def test_the_example_policy_file_is_valid_and_means_what_it_says():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "deploy" / "policy.example.toml"
    policies = PolicySet.from_file(path)
    assert policies.default.strategy_for("error")["freeze"] == "all_but_head"
    assert policies.for_model("clickthrough").strategy_for("error")["name"] == "online"
    assert policies.for_model("demand-forecast").gate.reference_tolerance == 0.15
    assert policies.for_model("demand-forecast").gate.min_gain == 0.01  # inherited


def test_retries_while_open_is_read_from_a_file_and_checked():
    policies = PolicySet.from_toml("[models.churn]\nretries_while_open = 2\n")
    assert policies.for_model("churn").retries_while_open == 2
    assert policies.for_model("other").retries_while_open == 0  # off by default
    with pytest.raises(ValueError, match="retries_while_open"):
        PolicySet.from_toml("[default]\nretries_while_open = -1\n")


def test_update_on_repeat_is_on_by_default_and_read_from_a_file():
    policies = PolicySet.from_toml("[models.churn]\nupdate_on_repeat = false\n")
    assert policies.for_model("churn").update_on_repeat is False
    assert policies.for_model("other").update_on_repeat is True
