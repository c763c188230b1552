"""deploy/compose.yaml checked without a container engine: valid against the Compose specification's JSON schema
(pinned, from the Go module proxy: deploy/compose-schema.sh) once interpolated as `docker compose` would; every
image pinned; only the gateway published; health checks and start order; every service gets the settings it needs
(and only names it knows); the gateway's nginx configuration rendered from the platform's own and checked by
`nginx -t`; Keycloak's realm, Alertmanager's configuration and Prometheus's configuration checked."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
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

COMPOSE_TEXT = (DEPLOY / "compose.yaml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
ENV_EXAMPLE = DEPLOY / "compose" / "env.example"
SERVICES = {
    "intake": IntakeSettings,
    "routing": RoutingSettings,
    "notifications": NotificationsSettings,
    "analytics": AnalyticsSettings,
}
BROKERS = [name for name, s in COMPOSE["services"].items() if str(s.get("image", "")).startswith("apache/kafka:")]


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


# --- interpolation, as `docker compose` does it before validating -----------------------------------------------

NAME = r"[A-Za-z_][A-Za-z0-9_]*"
VARIABLE = re.compile(rf"\$(?:\$|\{{(?P<braced>{NAME})(?:(?P<op>:?[-?])(?P<arg>[^}}]*))?\}}|(?P<bare>{NAME}))")


class Missing(Exception):
    pass


def interpolate(value, env: dict[str, str], missing: list[str]):
    """Compose's ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, $NAME and $$ in every
    string value (not in keys); the errors of unset required names are collected in ``missing``."""
    if isinstance(value, dict):
        return {key: interpolate(item, env, missing) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env, missing) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op"), match.group("arg")
        current = env.get(name)
        unset = current is None or (current == "" and op is not None and op.startswith(":"))
        if op in (":-", "-") and unset:
            return arg
        if op in (":?", "?") and unset:
            missing.append(f"{name}: {arg}")
            return ""
        return current or ""

    return VARIABLE.sub(replace, value)


def example_env() -> dict[str, str]:
    """deploy/compose/env.example with every empty secret filled (as the operator is told to)."""
    env = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value or f"{name.lower().replace('_', '')}0123456789abcdef"
    env["PEOPLE_KEK"] = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="
    env["ALERT_EMAIL_TO"], env["ALERT_EMAIL_FROM"] = "drift@kiruna.se", "larm@kiruna.se"
    env["ALERT_SMTP_SMARTHOST"], env["SMTP_HOST"] = "mail.kiruna.se:587", "mail.kiruna.se"
    return env


def resolved(document=COMPOSE, env: dict[str, str] | None = None):
    missing: list[str] = []
    result = interpolate(document, example_env() if env is None else env, missing)
    assert not missing, f"unset required variables: {missing}"
    return result


# --- the Compose specification's schema ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_schema() -> jsonschema.protocols.Validator:
    result = subprocess.run(
        [str(DEPLOY / "compose-schema.sh")], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"deploy/compose-schema.sh could not provide the schema: {result.stderr[-1000:]}"
    schema = json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def schema_errors(validator, document) -> list[str]:
    # Through JSON, as compose-go does (keys become strings, YAML's merge keys are already applied by the loader)
    plain = json.loads(json.dumps(document))
    return [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(plain)]


def test_the_compose_file_is_valid_against_the_compose_specification(compose_schema):
    assert schema_errors(compose_schema, resolved()) == []
    overrides = yaml.safe_load((DEPLOY / "compose" / "ops-ports.yaml").read_text())
    assert schema_errors(compose_schema, overrides) == []
    assert set(overrides["services"]) <= set(COMPOSE["services"])


def test_the_schema_check_catches_mistakes(compose_schema):
    """The validator is not vacuous: a misspelt key, wrong types and an unknown condition are each reported."""
    for path, value in (
        (("services", "intake", "healthcheck", "intervall"), "10s"),
        (("services", "redis", "restart"), ["always"]),
        (("services", "gateway", "ports"), "8080:8080"),
        (("services", "gateway", "depends_on", "intake", "condition"), "service_ready"),
    ):
        broken = copy.deepcopy(resolved())
        target = broken
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        assert schema_errors(compose_schema, broken), f"{'.'.join(path)} = {value!r} was not reported"


def test_every_required_variable_stops_compose_with_its_name_and_the_example_lists_every_one():
    missing: list[str] = []
    interpolate(COMPOSE, {}, missing)
    names = {entry.split(":")[0] for entry in missing}
    for secret in ("SESSION_SECRET", "OIDC_CLIENT_SECRET", "REDIS_PASSWORD", "KAFKA_ADMIN_PASSWORD", "PUBLIC_URL"):
        assert secret in names
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", json.dumps(COMPOSE)))  # values, not comments
    listed = {line.partition("=")[0] for line in ENV_EXAMPLE.read_text().splitlines() if "=" in line[:60]}
    listed = {name for name in listed if not name.startswith("#")}
    assert used - listed == set(), f"variables of compose.yaml missing from {ENV_EXAMPLE.name}"
    assert listed - used == set(), f"variables of {ENV_EXAMPLE.name} that compose.yaml does not use"
    example = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and line[0] != "#")
    for name in names:
        assert example[name] == "" or name == "PUBLIC_URL", f"{name} is required: the example leaves it to be filled"


def test_every_image_is_pinned_and_kafka_and_keycloak_are_those_of_make_run():
    pom_kafka = re.search(r"<kafka.version>(.+?)</kafka.version>", (DEPLOY / "kafka/pom.xml").read_text())[1]
    pom_keycloak = re.search(r"<keycloak.version>(.+?)</keycloak.version>", (DEPLOY / "keycloak/pom.xml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, service in COMPOSE["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag and "$" not in image, f"{name}: {image} names no fixed tag"
        pinned = re.fullmatch(r"v?\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?", tag)  # postgres: major.minor, e.g. 17.6
        assert pinned, f"{name}: {image} is not pinned to a version"
        if "build" in service:
            assert image == f"kiruna-innovation:{project}", f"{name}: the built image is tagged as pyproject's version"
    assert pom_kafka.startswith("4.4.")
    assert {COMPOSE["services"][b]["image"] for b in BROKERS} == {f"apache/kafka:{pom_kafka}"}
    assert COMPOSE["services"]["keycloak"]["image"] == f"quay.io/keycloak/keycloak:{pom_keycloak[1]}"


def test_only_the_gateway_is_published_and_everything_starts_in_order():
    services = resolved()["services"]
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"gateway"}
    assert services["gateway"]["ports"] == ["127.0.0.1:8080:8080"]
    gateway_needs = services["gateway"]["depends_on"]
    assert {name: d["condition"] for name, d in gateway_needs.items()} == dict.fromkeys(
        [*SERVICES, "keycloak"], "service_healthy"
    )
    for name, settings_class in SERVICES.items():
        port = settings_class.model_fields["port"].default
        check = services[name]["healthcheck"]["test"]
        assert check[0] == "CMD" and f"http://127.0.0.1:{port}/readyz" in check[-1], name
        needs = {dep: d["condition"] for dep, d in services[name]["depends_on"].items()}
        assert needs == {
            "topics": "service_completed_successfully",
            "kafka-access": "service_completed_successfully",
            "redis": "service_healthy",
        }
    for job in ("topics", "kafka-access"):
        assert services[job]["restart"] == "no"
        needs = {dep: how["condition"] for dep, how in services[job]["depends_on"].items()}
        assert needs == dict.fromkeys(BROKERS, "service_healthy")
    assert services["keycloak"]["depends_on"] == {"keycloak-db": {"condition": "service_healthy"}}
    # Everything a service depends on has a health check (or is a job that completes)
    for name, service in services.items():
        for dep, how in service.get("depends_on", {}).items():
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[dep] or "healthcheck" in COMPOSE.get("x-kafka-node", {}), (name, dep)


def test_compose_runs_a_kraft_cluster_with_sasl_and_acls():
    services = COMPOSE["services"]
    assert len(BROKERS) == 3
    for name in BROKERS:
        env = services[name]["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller" and env["KAFKA_ADVERTISED_LISTENERS"].endswith(
            f"{name}:9092"
        )
        assert env["KAFKA_ADVERTISED_LISTENERS"].startswith("SASL_PLAINTEXT://")
        assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
        assert env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
        assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2" and env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert all(f"@{b}:9093" in env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for b in BROKERS)
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"].split()[0])
        assert services[name]["healthcheck"]["test"][0] == "CMD-SHELL"
    assert services["topics"]["command"] == ["python", "-m", "shared.topics", "create"]
    assert services["kafka-access"]["command"] == ["python", "-m", "shared.kafka_access", "apply"]
    for name in SERVICES:
        assert services[name]["deploy"]["replicas"] >= 2
        assert services[name]["command"] == ["python", "-m", f"services.{name}"]
        build = services[name]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == ROOT / "Dockerfile"


def test_redis_has_a_password_and_an_append_only_file():
    redis = resolved()["services"]["redis"]
    script = redis["command"][-1]
    assert "requirepass" in script and "--appendonly yes" in script and "$REDIS_PASSWORD" in script
    assert redis["environment"]["REDIS_PASSWORD"] == example_env()["REDIS_PASSWORD"]
    assert "REDISCLI_AUTH" in redis["healthcheck"]["test"][-1]
    url = resolved()["services"]["intake"]["environment"]["REDIS_URL"]
    assert url == f"redis://:{example_env()['REDIS_PASSWORD']}@redis:6379/0"
    assert "/data" in redis["volumes"][0]


@pytest.mark.parametrize("service", list(SERVICES))
def test_every_service_gets_the_settings_it_needs_and_only_known_names(service):
    settings_class = SERVICES[service]
    env = COMPOSE["services"][service]["environment"]
    prefix = settings_class.model_config["env_prefix"]
    assert set(env["KAFKA_BOOTSTRAP_SERVERS"].split(",")) == {f"{b}:9092" for b in BROKERS}
    assert env["KAFKA_REPLICATION_FACTOR"] == "3" and env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert env["KAFKA_SASL_USERNAME"] == service and env["KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert env["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?") and env["REDIS_URL"].endswith("@redis:6379/0")
    assert env["OIDC_ISSUER_URL"].endswith("/idp/realms/kiruna")  # the compose file's Keycloak, via the gateway
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


def test_every_mounted_file_of_the_repository_exists():
    for name, service in COMPOSE["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {mount}"
            else:
                assert source in COMPOSE["volumes"], f"{name}: the named volume {source} is not declared"


# --- the gateway ------------------------------------------------------------------------------------------------


def render_gateway(tmp_path: Path) -> Path:
    out = tmp_path / "nginx.conf"
    result = subprocess.run(
        ["sh", str(DEPLOY / "compose/gateway/render.sh"), "render", str(out), str(DEPLOY / "nginx/kiruna.conf.in")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GATEWAY_PORT": "8080"},
    )
    assert result.returncode == 0, result.stderr
    return out


def test_the_gateway_renders_the_platforms_proxy_configuration_for_the_compose_network(tmp_path):
    config = render_gateway(tmp_path).read_text()
    template = (DEPLOY / "nginx/kiruna.conf.in").read_text()
    directives = "\n".join(line for line in config.splitlines() if not line.lstrip().startswith("#"))
    assert "listen 8080;" in directives and "127.0.0.1:" not in directives
    assert "daemon off;" in config and "resolver 127.0.0.11" in config
    for service, settings_class in SERVICES.items():
        port = settings_class.model_fields["port"].default
        assert re.search(rf"upstream {service} {{\n\s+zone {service} 64k;\n\s+server {service}:{port} resolve;", config)
    # Every route of the platform's own configuration is there, unchanged
    for location in re.findall(r"^\s*location [^{]+", template, flags=re.M):
        assert location in config
    assert "include /etc/nginx/kiruna/server.conf;" in config and "include /etc/nginx/kiruna/http.conf;" in config
    mounts = COMPOSE["services"]["gateway"]["volumes"]
    for target in ("kiruna.conf.in", "render.sh", "http.conf", "server.conf"):
        assert any(m.split(":")[1] == f"/etc/nginx/kiruna/{target}" for m in mounts), target
    server = (DEPLOY / "compose/gateway/server.conf").read_text()
    assert "location /idp/" in server and "location /grafana/" in server
    keycloak = COMPOSE["services"]["keycloak"]["environment"]
    assert keycloak["KC_HTTP_RELATIVE_PATH"] == "/idp" and keycloak["KC_HOSTNAME"].endswith("/idp")
    grafana = COMPOSE["services"]["grafana"]["environment"]
    assert grafana["GF_SERVER_ROOT_URL"].endswith("/grafana/") and grafana["GF_SERVER_SERVE_FROM_SUB_PATH"] == "true"
    # A trial on one machine: the services reach PUBLIC_URL through the gateway's alias
    alias = COMPOSE["services"]["gateway"]["networks"]["default"]["aliases"]
    assert example_env()["PUBLIC_URL"] == f"http://{alias[0]}:8080"


def test_the_rendered_gateway_configuration_passes_nginx_t(tmp_path):
    """nginx -t with the system's nginx (installed by `make install`: deploy/nginx/nginx.sh install). Only what the
    container provides is replaced: the compose names by 127.0.0.1 (the system's nginx may predate `resolve`, and
    the names resolve only inside the network), the image's user nginx by the current user."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    assert nginx, "nginx is missing: deploy/nginx/nginx.sh install (make install) installs it"
    config = render_gateway(tmp_path).read_text()
    local = tmp_path / "local"
    (local / "nginx").mkdir(parents=True)
    (local / "run").mkdir()

    def to_local(text: str) -> str:
        text = re.sub(r"server ([a-z]+):(\d+) resolve;", r"server 127.0.0.1:\2;", text)
        text = text.replace("/etc/nginx/kiruna/", f"{local}/").replace("/tmp/kiruna", str(local))
        if not Path("/etc/nginx/mime.types").exists():
            text = text.replace("include /etc/nginx/mime.types;", "types { text/html html; }")
        return text.replace("user nginx;", "# user")

    for name in ("http.conf", "server.conf"):
        (local / name).write_text(to_local((DEPLOY / "compose/gateway" / name).read_text()))
    (local / "nginx.conf").write_text(to_local(config))
    result = subprocess.run(
        [nginx, "-t", "-c", str(local / "nginx.conf"), "-p", f"{local}/", "-e", str(local / "error.log")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_gateway_render_refuses_a_template_it_does_not_know(tmp_path):
    template = tmp_path / "kiruna.conf.in"
    template.write_text((DEPLOY / "nginx/kiruna.conf.in").read_text().replace("daemon on;", "daemon  on;"))
    result = subprocess.run(
        ["sh", str(DEPLOY / "compose/gateway/render.sh"), "render", str(tmp_path / "out"), str(template)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "daemon on;" in result.stderr


# --- Keycloak ---------------------------------------------------------------------------------------------------


def test_keycloaks_realm_is_the_local_one_with_its_local_values_replaced():
    script = DEPLOY / "compose/keycloak/realm.py"
    result = subprocess.run([sys.executable, str(script), "check"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    text = (DEPLOY / "compose/keycloak/kiruna-realm.json").read_text()
    assert "kiruna-local" not in text and "127.0.0.1" not in text and "localhost" not in text
    realm = json.loads(text)
    web = next(c for c in realm["clients"] if c["clientId"] == "kiruna-web")
    assert web["secret"] == "${OIDC_CLIENT_SECRET}" and web["redirectUris"] == ["${PUBLIC_URL}/auth/callback"]
    assert all(u["credentials"][0]["temporary"] for u in realm["users"])
    keycloak = COMPOSE["services"]["keycloak"]
    for placeholder in set(re.findall(r"\$\{([A-Z_]+)\}", text)):
        assert placeholder in keycloak["environment"], f"Keycloak's realm needs {placeholder} in its environment"
    assert keycloak["environment"]["KC_DB"] == "postgres" and "keycloak-db:5432" in keycloak["environment"]["KC_DB_URL"]
    assert "--import-realm" in keycloak["command"]
    assert "./compose/keycloak/kiruna-realm.json:/opt/keycloak/data/import/kiruna-realm.json:ro" in keycloak["volumes"]


# --- Prometheus, Alertmanager, Grafana ---------------------------------------------------------------------------


def test_prometheus_in_compose_scrapes_every_replica_and_sends_alerts_to_alertmanager(promtool):
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus-compose.yml").read_text())
    jobs = {job["job_name"]: job["dns_sd_configs"][0] for job in config["scrape_configs"]}
    for service, settings_class in SERVICES.items():
        assert jobs[service]["names"] == [service] and jobs[service]["type"] == "A"
        assert jobs[service]["port"] == settings_class.model_fields["port"].default
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"] and "alertmanager" in COMPOSE["services"]
    mounts = COMPOSE["services"]["prometheus"]["volumes"]
    assert "./prometheus/prometheus-compose.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    assert "./prometheus/rules.yml:/etc/prometheus/rules.yml:ro" in mounts
    result = subprocess.run(
        [promtool, "check", "config", str(DEPLOY / "prometheus/prometheus-compose.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def render_alertmanager(tmp_path: Path, **values: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERT_")} | values
    return subprocess.run(
        ["sh", str(DEPLOY / "alertmanager/alertmanager.sh"), "render", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def test_alertmanager_routes_every_alert_to_the_receiver_its_environment_configures(tmp_path):
    result = render_alertmanager(
        tmp_path,
        ALERT_EMAIL_TO="drift@kiruna.se",
        ALERT_EMAIL_FROM="larm@kiruna.se",
        ALERT_SMTP_SMARTHOST="mail.kiruna.se:587",
        ALERT_SMTP_USERNAME="larm",
        ALERT_SMTP_PASSWORD="hemligt-lösen",
        ALERT_WEBHOOK_URL="https://chat.kiruna.se/hooks/abc?token=xyz",
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((tmp_path / "alertmanager.yml").read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    routes = [config["route"], *config["route"]["routes"]]
    assert all(route["receiver"] in receivers for route in routes)
    email = receivers["operators"]["email_configs"][0]
    assert (email["to"], email["from"]) == ("drift@kiruna.se", "larm@kiruna.se")
    assert email["smarthost"] == "mail.kiruna.se:587" and email["require_tls"] is True
    assert Path(email["auth_password_file"]).read_text() == "hemligt-lösen"
    webhook = receivers["operators"]["webhook_configs"][0]
    assert Path(webhook["url_file"]).read_text() == "https://chat.kiruna.se/hooks/abc?token=xyz"
    assert "hemligt" not in (tmp_path / "alertmanager.yml").read_text()  # secrets only in their own files
    # Only a webhook: no e-mail section
    only_hook = render_alertmanager(tmp_path / "hook", ALERT_WEBHOOK_URL="https://chat.kiruna.se/hooks/abc")
    assert only_hook.returncode == 0, only_hook.stderr
    config = yaml.safe_load((tmp_path / "hook/alertmanager.yml").read_text())
    assert "email_configs" not in config["receivers"][0] and config["receivers"][0]["webhook_configs"]
    # Every severity of the rules has a route
    rules = yaml.safe_load((DEPLOY / "prometheus/rules.yml").read_text())
    severities = {r["labels"]["severity"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert severities <= {"critical", "warning", "info"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "alerts must reach someone"),
        ({"ALERT_EMAIL_TO": "drift@kiruna.se"}, "ALERT_EMAIL_FROM"),
        (
            {"ALERT_EMAIL_TO": 'a"b@kiruna.se', "ALERT_EMAIL_FROM": "x@kiruna.se", "ALERT_SMTP_SMARTHOST": "m:25"},
            "ALERT_EMAIL_TO must not contain quotes",
        ),
        ({"ALERT_WEBHOOK_URL": "chat.kiruna.se/hook"}, "ALERT_WEBHOOK_URL must be an http(s) URL"),
    ],
)
def test_alertmanager_refuses_a_configuration_that_would_reach_no_one(tmp_path, values, message):
    result = render_alertmanager(tmp_path, **values)
    assert result.returncode != 0 and message in result.stderr


def test_alertmanagers_environment_in_compose_is_what_its_script_reads():
    script = (DEPLOY / "alertmanager/alertmanager.sh").read_text()
    read = set(re.findall(r"\$\{(ALERT_[A-Z_]+)", script))
    service = COMPOSE["services"]["alertmanager"]
    assert set(service["environment"]) == read
    assert "./alertmanager/alertmanager.sh:/etc/alertmanager/kiruna/alertmanager.sh:ro" in service["volumes"]
    assert service["entrypoint"] == ["sh", "/etc/alertmanager/kiruna/alertmanager.sh"]


def test_grafana_is_provisioned_with_the_dashboards_prometheus_and_alertmanager():
    mounts = {m.split(":")[1]: m.split(":")[0] for m in COMPOSE["services"]["grafana"]["volumes"]}
    assert mounts["/var/lib/grafana/dashboards"] == "./grafana/dashboards"
    assert mounts["/etc/grafana/provisioning/dashboards"] == "./grafana/provisioning/dashboards"
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/kiruna.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    home = COMPOSE["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DEPLOY / "grafana/dashboards" / Path(home).name).exists()
    sources = [
        yaml.safe_load((DEPLOY / mounts[target]).read_text())["datasources"][0]
        for target in mounts
        if target.startswith("/etc/grafana/provisioning/datasources/")
    ]
    assert {(s["type"], s["url"]) for s in sources} == {
        ("prometheus", "http://prometheus:9090"),
        ("alertmanager", "http://alertmanager:9093"),
    }


def test_the_image_runs_the_services_from_the_repository_code():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for needed in ("COPY shared ./shared", "COPY services ./services", "COPY catalogue ./catalogue", "USER "):
        assert needed in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git"} <= set(ignored)
    assert Path(ROOT / "pyproject.toml").exists()
