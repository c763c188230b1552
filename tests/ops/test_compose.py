"""deploy/compose.yaml checked without a container engine: its structure, that every service gets the settings
it needs (and only names it knows), and that names and ports match Prometheus's configuration."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from services.analytics.settings import AnalyticsSettings
from services.intake.settings import IntakeSettings
from services.notifications.settings import NotificationsSettings
from services.routing.settings import RoutingSettings
from shared.oidc import OidcSettings
from shared.operations import OpsSettings
from shared.settings import KafkaSettings
from tests.ops.conftest import DEPLOY, ROOT

pytestmark = pytest.mark.ops

COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SERVICES = {
    "intake": IntakeSettings,
    "routing": RoutingSettings,
    "notifications": NotificationsSettings,
    "analytics": AnalyticsSettings,
}


def env_names(settings_class) -> set[str]:
    """Every environment name a settings class reads (prefix + field, or its alias)."""
    prefix = settings_class.model_config.get("env_prefix", "")
    names = set()
    for name, field in settings_class.model_fields.items():
        alias = field.validation_alias
        names.add(alias.upper() if isinstance(alias, str) else f"{prefix}{name}".upper())
    return names


KNOWN = (
    {f"KAFKA_{name.upper()}" for name in KafkaSettings.model_fields}
    | env_names(OpsSettings)
    | env_names(OidcSettings)
    | {"LOG_LEVEL", "REDIS_URL", "REDIS_KEY_PREFIX", "CATALOGUE_PATH", "PUBLIC_BASE_URL"}
    | {"KIRUNA_ENV", "SESSION_SECRET", "SESSION_MAX_AGE_S"}
)


def test_compose_runs_a_kraft_cluster_redis_the_services_in_replicas_prometheus_and_grafana():
    services = COMPOSE["services"]
    brokers = [name for name, s in services.items() if str(s.get("image", "")).startswith("apache/kafka")]
    assert len(brokers) == 3
    for name in brokers:
        env = services[name]["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller" and env["KAFKA_ADVERTISED_LISTENERS"].endswith(
            f"{name}:9092"
        )
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2" and env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert all(f"@{b}:9093" in env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for b in brokers)
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"].split()[0])
    assert services["redis"]["image"].startswith("redis:")
    assert {"prometheus", "grafana", "topics"} <= set(services)
    assert services["topics"]["command"] == ["python", "-m", "shared.topics", "create"]
    for name in SERVICES:
        assert services[name]["deploy"]["replicas"] >= 2
        assert services[name]["command"] == ["python", "-m", f"services.{name}"]
        assert services[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
        build = services[name]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == ROOT / "Dockerfile"


@pytest.mark.parametrize("service", list(SERVICES))
def test_every_service_gets_the_settings_it_needs_and_only_known_names(service):
    settings_class = SERVICES[service]
    env = COMPOSE["services"][service]["environment"]
    prefix = settings_class.model_config["env_prefix"]
    brokers = [n for n, s in COMPOSE["services"].items() if str(s.get("image", "")).startswith("apache/kafka")]
    assert set(env["KAFKA_BOOTSTRAP_SERVERS"].split(",")) == {f"{b}:9092" for b in brokers}
    assert env["KAFKA_REPLICATION_FACTOR"] == "3" and env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert env["REDIS_URL"].startswith("redis://redis:")
    assert env[f"{prefix}HOST"] == "0.0.0.0"
    assert int(env[f"{prefix}PORT"]) == settings_class.model_fields["port"].default
    assert env[f"{prefix}GROUP_ID"] == service  # every replica in the same consumer groups
    unknown = set(env) - KNOWN - env_names(settings_class)
    assert not unknown, f"{service}: settings that no code reads: {unknown}"
    assert env["KIRUNA_ENV"] == "production"  # no service may start with a development secret
    secrets = {
        f.validation_alias if isinstance(f.validation_alias, str) else f"{prefix}{n}".upper()
        for n, f in settings_class.model_fields.items()
        if f.annotation in (SecretStr,)
    } | {"OIDC_CLIENT_SECRET"}
    for variable in secrets:
        assert variable in env and ":?" in str(env[variable]), f"{service}: {variable} must be set, not defaulted"
    timeout = float(env["SHUTDOWN_TIMEOUT_S"])
    grace = COMPOSE["services"][service]["stop_grace_period"]
    assert float(grace.rstrip("s")) > timeout  # the service stops itself before Docker kills it


def test_prometheus_in_compose_scrapes_every_replica_of_each_service_on_its_port():
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus-compose.yml").read_text())
    jobs = {job["job_name"]: job["dns_sd_configs"][0] for job in config["scrape_configs"]}
    for service, settings_class in SERVICES.items():
        assert jobs[service]["names"] == [service] and jobs[service]["type"] == "A"
        assert jobs[service]["port"] == settings_class.model_fields["port"].default
    mounts = COMPOSE["services"]["prometheus"]["volumes"]
    assert "./prometheus/prometheus-compose.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    for mount in mounts + COMPOSE["services"]["grafana"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("."):
            assert (DEPLOY / source).exists(), mount
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_the_image_runs_the_services_from_the_repository_code():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for needed in ("COPY shared ./shared", "COPY services ./services", "COPY catalogue ./catalogue", "USER "):
        assert needed in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git"} <= set(ignored)
    assert Path(ROOT / "pyproject.toml").exists()
