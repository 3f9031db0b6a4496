"""The config file (DRIFTLINE_CONFIG): what it sets, and errors that name the bad key."""

from __future__ import annotations

import pytest

from contracts.events import InferenceEvent
from contracts.settings import Settings
from learners.policy import PolicySet
from streams.config_file import WorkerConfig
from streams.monitor import MonitorConfig
from streams.runtime import Source
from tests.unit.test_runtime import ListPublisher, ListSink


@pytest.mark.parametrize(
    "text, message",
    [
        ("[monitor]\nlow_confidence = 'high'", "[monitor] low_confidence must be a number"),
        ("[monitor]\nalarm_cooldown = 2.5", "[monitor] alarm_cooldown must be a whole number"),
        ("[models.m]\nresolve_after_s = -1", "[models.m] resolve_after_s must be >= 0"),
        ("[models.m]\nlatancy_slo_ms = 1", "[models.m] unknown key 'latancy_slo_ms'"),
        ("[limits]\nmax_model = 3", "[limits] unknown key 'max_model'"),
        ("[monitors]\nx = 1", "unknown tables ['monitors']"),
        ("[monitor]\nfeature_detectors = [['cusumm', {}]]", "unknown detector 'cusumm'"),
        (
            "[monitor]\nfeature_detectors = [['cusum', {shifts = 'big'}]]",
            "feature_detectors: cusum",
        ),
        ("[monitor]\nfeature_detectors = ['cusum']", 'write a list of ["name", {params}] pairs'),
        (
            "[monitor]\noutput_rules = [{name = 'r', kind = 'between', field = 'score'}]",
            "output_rules: rule 'r': unknown kind 'between'",
        ),
    ],
)
def test_errors_name_the_table_and_the_key(text, message):
    with pytest.raises(ValueError) as error:
        WorkerConfig.from_toml(text)
    assert message in str(error.value)


def test_a_file_error_names_the_file(tmp_path):
    path = tmp_path / "driftline.toml"
    path.write_text("[monitor\n")
    with pytest.raises(ValueError, match=f"config file {path}"):
        WorkerConfig.from_file(path)


def test_models_inherit_the_monitor_table_then_override_it():
    config = WorkerConfig.from_toml(
        "[monitor]\nresolve_after_s = 60\ninput_refresh_every = 0\nfalse_alarm_events = 0\n"
        "[models.a]\nresolve_after_s = 5\n"
    )
    a, other = config.for_model("a"), config.for_model("b")
    assert (a.resolve_after_s, other.resolve_after_s) == (5.0, 60.0)
    assert a.input_refresh_every is None and a.false_alarm_events is None  # 0 turns them off
    assert other == config.default


def test_the_file_wins_over_the_environment():
    settings = Settings(batch_max=500, max_models=10)
    config = WorkerConfig.from_toml("[limits]\nbatch_max = 64\n")
    assert config.settings(settings).batch_max == 64
    assert config.settings(settings).max_models == 10
    base = MonitorConfig(low_confidence=0.9)  # what DRIFTLINE_LOW_CONFIDENCE gave
    assert (
        WorkerConfig.from_toml("[monitor]\nlow_confidence = 0.5", base).default.low_confidence
        == 0.5
    )
    assert WorkerConfig.from_toml("", base).default.low_confidence == 0.9


def test_the_policy_table_is_the_learners(tmp_path):
    path = tmp_path / "driftline.toml"
    path.write_text("[monitor]\nresolve_after_s = 60\n[policy.models.m]\nmin_labelled = 40\n")
    policies = PolicySet.from_config_file(path)
    assert policies.for_model("m").min_labelled == 40
    path.write_text("[monitor]\nresolve_after_s = 60\n")
    assert PolicySet.from_config_file(path) is None
    path.write_text("[policy.default]\nmin_labeled = 40\n")
    with pytest.raises(ValueError, match="unknown policy keys \\['min_labeled'\\]"):
        PolicySet.from_config_file(path)


async def test_the_runtime_gives_each_model_its_own_monitor_config():
    from streams.runtime import MonitorRuntime

    config = WorkerConfig.from_toml("[models.strict]\nlatency_slo_ms = 5\nalarm_cooldown = 7\n")
    runtime = MonitorRuntime(
        Settings(topic_prefix="t"),
        ListPublisher(),
        ListSink(),
        config=config.default,
        model_configs=config.models,
    )
    for offset, model in enumerate(["strict", "relaxed"]):
        event = InferenceEvent(model, "v1", "r", 10.0, {"x": 1.0}, 1, latency_ms=20.0)
        await runtime.handle_inference(event.to_json(), Source("t.inferences", 0, offset))
    strict, relaxed = runtime.monitors["strict"], runtime.monitors["relaxed"]
    assert strict.config.alarm_cooldown == 7 and relaxed.config.alarm_cooldown == 500
    assert strict.slo.detectors["latency_slo"].params["slo_ms"] == 5.0
    assert relaxed.slo.detectors["latency_slo"].params["slo_ms"] == 250.0
