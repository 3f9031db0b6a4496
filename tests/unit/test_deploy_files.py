"""deploy/: every file parses and passes a schema checker from PyPI or the system's own tool.

- docker-compose.yml: check-jsonschema's vendored Compose Specification schema;
- k8s/*.yaml: kubernetes-validate, strict (unknown fields fail), against Kubernetes 1.37;
- systemd/*.service: ``systemd-analyze verify`` (warnings count as failures);
- prometheus/driftline-rules.yml and grafana/driftline-dashboard.json: every expression parses as
  PromQL (promql-parser); the metrics they use are checked against real /metrics output in
  tests/integration/test_observability.py.

And each process a deployment file starts is a real ``driftline`` command.
"""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import promql_parser
import pytest
import yaml

from driftline.cli import app
from learners.policy import PolicySet
from streams.config_file import WorkerConfig

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMMANDS = {c.name or c.callback.__name__ for c in app.registered_commands}


def test_the_cli_knows_every_process():
    assert {
        "worker",
        "learner",
        "bridge",
        "dashboard",
        "demo",
        "status",
        "alarms",
        "replay",
    } <= COMMANDS


def _check_compose(path: Path) -> subprocess.CompletedProcess:
    """check-jsonschema with its vendored Compose Specification schema."""
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    return subprocess.run([*command, str(path)], capture_output=True, text=True)


def test_compose_file_matches_the_compose_spec():
    proc = _check_compose(DEPLOY / "docker-compose.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"kafka", "redis", "worker", "learner", "bridge", "dashboard"}
    for name in ("worker", "learner", "bridge", "dashboard"):
        assert services[name]["command"][0] in COMMANDS, name
        assert "healthcheck" in services[name], name
    assert "--appendonly" in services["redis"]["command"]  # counters survive a restart


def test_compose_spec_check_can_fail(tmp_path):
    bad = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    bad["services"]["worker"]["restart"] = ["always"]  # must be a string
    path = tmp_path / "compose.yml"
    path.write_text(yaml.safe_dump(bad))
    proc = _check_compose(path)
    assert proc.returncode != 0


def _k8s_docs():
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path.name, doc


@pytest.mark.parametrize(
    "name,doc", list(_k8s_docs()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_kubernetes_manifests_validate_strictly(name, doc):
    kubernetes_validate.validate(doc, "1.37", strict=True)
    if doc["kind"] == "Deployment":
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        assert container["args"][0] in COMMANDS, name
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["path"] in ("/metrics", "/healthz"), name


def test_kubernetes_validation_can_fail():
    doc = yaml.safe_load((DEPLOY / "k8s" / "worker.yaml").read_text())
    doc["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, "1.37", strict=True)


def test_the_config_files_shipped_are_ones_worker_and_learner_accept(tmp_path):
    config = yaml.safe_load((DEPLOY / "k8s" / "configmap.yaml").read_text())
    assert config["data"]["DRIFTLINE_CONFIG"] == "/etc/driftline/driftline.toml"
    in_configmap = tmp_path / "driftline.toml"
    in_configmap.write_text(config["data"]["driftline.toml"])
    for path in (in_configmap, DEPLOY / "driftline.example.toml"):
        worker = WorkerConfig.from_file(path)
        assert worker.limits["max_models"] == 10000
        assert PolicySet.from_config_file(path).default.bake_samples == 200
    assert PolicySet.from_config_file(in_configmap).for_model("any").min_labelled == 500
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    mounted = compose["x-driftline"]["volumes"][1].split(":")[0]
    assert (DEPLOY / mounted).exists(), mounted


SYSTEMD = sorted((DEPLOY / "systemd").glob("*.service"))


def _verify(units: list[Path], tmp_path: Path) -> subprocess.CompletedProcess:
    """systemd-analyze verify on copies whose ExecStart is this venv's driftline."""
    here = Path(sys.executable).parent / "driftline"
    copies = []
    for unit in units:
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace("/opt/driftline/venv/bin/driftline", str(here)))
        copies.append(str(copy))
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing: make test installs systemd"
    return subprocess.run([tool, "verify", *copies], capture_output=True, text=True)


def test_systemd_units_verify(tmp_path):
    assert {u.name for u in SYSTEMD} == {
        "driftline-worker@.service",
        "driftline-learner.service",
        "driftline-bridge.service",
        "driftline-dashboard.service",
    }
    proc = _verify(SYSTEMD, tmp_path)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    for unit in SYSTEMD:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str
        parser.read(unit)
        command = parser["Service"]["ExecStart"].split()[1]
        assert command in COMMANDS, unit.name
        assert parser["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_verification_can_fail(tmp_path):
    bad = tmp_path / "src" / "driftline-bad.service"
    bad.parent.mkdir()
    bad.write_text(SYSTEMD[0].read_text().replace("Restart=on-failure", "Restart=sometimes"))
    proc = _verify([bad], tmp_path)
    assert "restart specifier" in proc.stderr


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (parsed, so a syntax error raises)."""
    import re

    text = str(promql_parser.parse(expr))  # the parser writes selectors as name{...}
    return set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", text))


def alert_rules() -> list[dict]:
    doc = yaml.safe_load((DEPLOY / "prometheus" / "driftline-rules.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def grafana_exprs() -> list[str]:
    board = json.loads((DEPLOY / "grafana" / "driftline-dashboard.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    for var in board["templating"]["list"]:
        if var["type"] == "query":  # label_values(metric, label) is Grafana's, not PromQL
            exprs.append(var["definition"].removeprefix("label_values(").split(",")[0])
    return exprs


def test_alert_rules_and_dashboard_parse_as_promql():
    rules = alert_rules()
    assert len(rules) >= 8
    for rule in rules:
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert promql_metric_names(rule["expr"]), rule["alert"]
    for expr in grafana_exprs():
        assert promql_metric_names(expr), expr
    with pytest.raises(ValueError):
        promql_parser.parse("sum by (model (driftline_detector_ratio)")
