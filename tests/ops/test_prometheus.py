"""deploy/prometheus checked with Prometheus's own promtool: the scrape configurations, the rules and their unit
tests (one per alert, starting from absent series); what the operators' dashboard covers. Every dashboard query
parsed and checked against what the services expose: tests/ops/test_dashboards.py."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from tests.ops.conftest import DEPLOY

pytestmark = pytest.mark.ops

PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "kiruna-operations.json"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-compose.yml"])
def test_the_scrape_configuration_is_valid(promtool, config):
    result = run(promtool, "check", "config", str(PROMETHEUS / config))
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {job["job_name"] for job in yaml.safe_load((PROMETHEUS / config).read_text())["scrape_configs"]}
    assert jobs == {"intake", "routing", "notifications", "analytics"}


def test_the_local_configuration_scrapes_the_four_services_on_their_ports():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets == {
        "intake": ["127.0.0.1:8000"],
        "routing": ["127.0.0.1:8001"],
        "notifications": ["127.0.0.1:8002"],
        "analytics": ["127.0.0.1:8003"],
    }


def test_the_rules_are_valid_and_their_unit_tests_pass(promtool):
    checked = run(promtool, "check", "rules", str(PROMETHEUS / "rules.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run(promtool, "test", "rules", str(PROMETHEUS / "rules.test.yml"))
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    alerts = {
        r["alert"]
        for g in yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    tests = (PROMETHEUS / "rules.test.yml").read_text()
    untested = {alert for alert in alerts if f"alertname: {alert}" not in tests}
    assert not untested, f"alerts without a unit test: {untested}"
    assert not (unproven := alerts - alerts_proven_from_absent_series()), (
        f"alerts without a unit test that starts every series absent and sees the alert fire: {unproven}"
    )
    assert {
        "KirunaServiceDown",
        "KirunaConsumerLagGrowing",
        "KirunaDeadLetters",
        "KirunaResponseTargetOverdue",
        "KirunaNotificationsFailing",
    } <= alerts


def alerts_proven_from_absent_series() -> set[str]:
    """Alerts of rules.test.yml tests whose every input series starts absent ("_", a process not yet scraped) and
    which expect the alert to fire at some evaluation."""
    proven = set()
    for test in yaml.safe_load((PROMETHEUS / "rules.test.yml").read_text())["tests"]:
        if all(str(series["values"]).split()[0] == "_" for series in test["input_series"]):
            proven |= {check["alertname"] for check in test.get("alert_rule_test", []) if check.get("exp_alerts")}
    return proven


def dashboard_expressions() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_the_dashboard_covers_throughput_latency_lag_errors_and_dead_letters():
    dashboard = json.loads(DASHBOARD.read_text())
    queries = " ".join(expr for _, expr in dashboard_expressions())
    for needed in (
        "faststream_received_processed_messages_total",
        "kiruna_published_events_total",
        "_duration_seconds_bucket",
        "kiruna:consumer_lag_messages:sum",
        "kiruna_dead_letters_total",
        "faststream_received_processed_messages_exceptions_total",
        "kiruna_http_requests_total",
    ):
        assert needed in queries, needed
    datasources = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    provisioned = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasources == {d["uid"] for d in provisioned["datasources"]}
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/kiruna.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
