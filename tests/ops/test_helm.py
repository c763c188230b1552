"""The Helm chart (deploy/helm/kiruna/) checked without a cluster: `helm lint`, `helm template`, kubeconform against
Kubernetes' own API schemas, and the rendered objects read: probes, resources, a PodDisruptionBudget and an
autoscaler per service that never scales a consumer beyond its topics' partitions, Secrets referred to and never
rendered, and settings every service accepts in production. Helm, kubeconform and the schemas come from
deploy/helm.sh (built from the Go module proxy; `make test` starts the build in the background)."""

from __future__ import annotations

import base64
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from services.analytics.settings import AnalyticsSettings
from services.intake.settings import IntakeSettings
from services.notifications.settings import NotificationsSettings
from services.routing.settings import RoutingSettings
from shared.operations import OpsSettings
from shared.settings import refuse_development_secrets
from tests.ops.conftest import DEPLOY, ROOT

pytestmark = pytest.mark.ops

CHART = DEPLOY / "helm" / "kiruna"
SERVICES = {
    "intake": IntakeSettings,
    "routing": RoutingSettings,
    "notifications": NotificationsSettings,
    "analytics": AnalyticsSettings,
}
# What an operator must give (everything else has a default); secrets are never among them.
REQUIRED = [
    "--set",
    "kafka.bootstrapServers=kafka-1.example:9093\\,kafka-2.example:9093\\,kafka-3.example:9093",
    "--set",
    "oidc.issuerUrl=https://login.example.se/realms/kiruna",
    "--set-file",
    f"catalogue.toml={ROOT / 'catalogue' / 'kiruna.toml'}",
]
# What a Secret would hold, for the settings classes to read (PEOPLE_KEK must be 32 bytes of base64).
STAND_INS = {
    "PEOPLE_KEK": base64.b64encode(b"helm-test-stand-in-key-32-bytes!").decode(),
    "REDIS_URL": "redis://:pw@r:6379/0",
}
OWN_PREFIXES = ("KAFKA_", "REDIS_", "OIDC_", "INTAKE_", "ROUTING_", "NOTIFICATIONS_", "ANALYTICS_", "SMTP_")
OWN_SECRETS = {"intake": ("INTAKE_FORM_SECRET",), "notifications": ("NOTIFICATIONS_UNSUBSCRIBE_SECRET",)}
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|KEK|PEPPER|WEBHOOKS|^REDIS_URL$")


def _tool(what: str) -> str:
    """The path deploy/helm.sh prints for `what` (helm, kubeconform, schemas), building it if needed (waiting for
    a build `make test` started in the background). A tool that cannot be had fails the test: CI must have it."""
    try:
        result = subprocess.run(
            [str(DEPLOY / "helm.sh"), what], capture_output=True, text=True, timeout=1200, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"deploy/helm.sh {what} did not finish in 20 minutes: {exc!r}")
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0 and lines, f"deploy/helm.sh {what} failed:\n{result.stderr[-2000:]}"
    return lines[-1]


@pytest.fixture(scope="module")
def helm() -> str:
    return _tool("helm")


def _template(helm: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [helm, "template", "kiruna", str(CHART), "--namespace", "kiruna", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def rendered(helm) -> str:
    result = _template(helm, *REQUIRED)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def objects(rendered) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def _by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _workloads(objects: list[dict]) -> dict[str, dict]:
    """The four services' Deployments and StatefulSets, by service name."""
    found = {}
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet"):
            found[o["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]] = o
    return found


def _container(workload: dict) -> dict:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return container


def _settings_map(objects: list[dict]) -> dict[str, str]:
    return _by_kind(objects, "ConfigMap")["kiruna-settings"]["data"]


def test_the_chart_passes_helm_lint_strict(helm):
    result = subprocess.run(
        [helm, "lint", "--strict", str(CHART), *REQUIRED], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def test_the_rendered_manifests_pass_kubeconform_against_the_kubernetes_api_schemas(rendered, objects, tmp_path):
    kubeconform, schemas = _tool("kubeconform"), _tool("schemas")
    location = f"{schemas}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json"

    def check(manifests: str) -> subprocess.CompletedProcess:
        path = tmp_path / "manifests.yaml"
        path.write_text(manifests)
        return subprocess.run(
            [kubeconform, "-strict", "-summary", "-schema-location", location, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    result = check(rendered)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Valid: {len(objects)}, Invalid: 0, Errors: 0, Skipped: 0" in result.stdout, result.stdout
    # The other shapes: mutual TLS to Kafka, a catalogue ConfigMap of one's own, fixed replicas, no e-mail in.
    options = ["kafka.tls.caSecret=ca", "kafka.tls.clientCertSecret=client", "catalogue.existingConfigMap=mine"]
    options += ["services.intake.autoscaling.enabled=false", "services.intake.smtp.enabled=false"]
    other = _template(_tool("helm"), *REQUIRED[:4], *[a for o in options for a in ("--set", o)])
    assert other.returncode == 0, other.stderr
    result = check(other.stdout)
    assert result.returncode == 0 and "Invalid: 0, Errors: 0, Skipped: 0" in result.stdout, result.stdout
    # The same check refuses what the API would: a misspelt field, a wrong type.
    broken = rendered.replace("readinessProbe:", "readynessProbe:", 1)
    assert check(broken).returncode != 0 and "readynessProbe" in check(broken).stdout
    wrong_type = rendered.replace("terminationGracePeriodSeconds: 40", "terminationGracePeriodSeconds: forty", 1)
    assert wrong_type != rendered and check(wrong_type).returncode != 0


def test_every_service_runs_with_probes_resources_and_a_grace_period_longer_than_its_shutdown(objects):
    workloads = _workloads(objects)
    assert set(workloads) == set(SERVICES)
    assert workloads["routing"]["kind"] == "StatefulSet"  # a stable transactional id per replica
    shutdown_s = float(_settings_map(objects)["SHUTDOWN_TIMEOUT_S"])
    for name, workload in workloads.items():
        pod = workload["spec"]["template"]["spec"]
        container = _container(workload)
        port = SERVICES[name].model_fields["port"].default
        assert container["command"] == ["python", "-m", f"services.{name}"]
        assert {"name": "http", "containerPort": port, "protocol": "TCP"} in container["ports"]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        requests = container["resources"]["requests"]
        assert requests["cpu"] and requests["memory"] and container["resources"]["limits"]["memory"]
        assert pod["terminationGracePeriodSeconds"] > shutdown_s
        assert pod["enableServiceLinks"] is False  # INTAKE_PORT=tcp://... would stop intake's start
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port) and annotations["prometheus.io/path"] == "/metrics"


def test_every_service_has_a_service_and_a_disruption_budget_that_select_its_pods(objects):
    services, budgets = _by_kind(objects, "Service"), _by_kind(objects, "PodDisruptionBudget")
    for name, workload in _workloads(objects).items():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        service = services[f"kiruna-{name}"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert {"name": "http", "port": SERVICES[name].model_fields["port"].default, "targetPort": "http"}.items() <= (
            service["spec"]["ports"][0].items()
        )
        budget = budgets[f"kiruna-{name}"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert budget["spec"]["maxUnavailable"] == 1
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert services["kiruna-routing-pods"]["spec"]["clusterIP"] == "None"  # the StatefulSet's governing Service
    assert _workloads(objects)["routing"]["spec"]["serviceName"] == "kiruna-routing-pods"
    assert {"name": "smtp", "port": 2525, "targetPort": "smtp", "protocol": "TCP"} in services["kiruna-intake"]["spec"][
        "ports"
    ]


def test_every_consumer_scales_up_to_at_most_the_partitions_of_its_topics(objects):
    partitions = int(_settings_map(objects)["KAFKA_PARTITIONS"])
    autoscalers = _by_kind(objects, "HorizontalPodAutoscaler")
    for name, workload in _workloads(objects).items():
        hpa = autoscalers[f"kiruna-{name}"]["spec"]
        assert hpa["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": workload["kind"],
            "name": workload["metadata"]["name"],
        }
        assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"] <= partitions
        assert hpa["metrics"][0]["resource"]["name"] == "cpu"
        assert "replicas" not in workload["spec"]  # the autoscaler owns the count


def test_an_autoscaler_beyond_the_partitions_is_refused_naming_the_values(helm):
    result = _template(helm, *REQUIRED, "--set", "services.routing.autoscaling.maxReplicas=7")
    assert result.returncode != 0
    assert "services.routing.autoscaling.maxReplicas is 7, more than kafka.partitions (6)" in result.stderr
    fewer = _template(helm, *REQUIRED, "--set", "kafka.partitions=2")
    assert fewer.returncode != 0 and "more than kafka.partitions (2)" in fewer.stderr
    more = _template(
        helm, *REQUIRED, "--set", "kafka.partitions=12", "--set", "services.routing.autoscaling.maxReplicas=12"
    )
    assert more.returncode == 0, more.stderr
    (hpa,) = [
        d
        for d in yaml.safe_load_all(more.stdout)
        if d and d["kind"] == "HorizontalPodAutoscaler" and d["metadata"]["name"] == "kiruna-routing"
    ]
    assert hpa["spec"]["maxReplicas"] == 12


def test_no_secret_value_is_rendered_only_references_to_secrets(objects, rendered):
    assert not _by_kind(objects, "Secret")
    for name in _settings_map(objects):
        assert not SECRET_NAME.search(name), f"the settings ConfigMap carries {name}, a secret"
    for name, workload in _workloads(objects).items():
        env = {e["name"]: e for e in _container(workload)["env"]}
        secrets = {n: e for n, e in env.items() if SECRET_NAME.search(n)}
        # Every secret the service reads is given, from a Secret: the shared ones, its Kafka password, its own.
        needed = {"REDIS_URL", "SESSION_SECRET", "PEOPLE_KEK", "PSEUDONYM_PEPPER", "OIDC_CLIENT_SECRET"}
        needed |= {"KAFKA_SASL_PASSWORD", *OWN_SECRETS.get(name, ())}
        assert needed <= set(secrets), f"{name}: missing {needed - set(secrets)}"
        for variable, entry in secrets.items():
            assert "value" not in entry and entry["valueFrom"]["secretKeyRef"]["name"], f"{name}: {variable}"
    values = (CHART / "values.yaml").read_text()
    assert not re.search(r"(?m)^\s*(SESSION_SECRET|PEOPLE_KEK|PSEUDONYM_PEPPER|password)\s*:\s*\S", values)
    assert "local-session-secret" not in rendered and "change-me" not in rendered


def test_a_secret_given_as_a_plain_value_is_refused(helm):
    result = _template(helm, *REQUIRED, "--set", "services.routing.env.KAFKA_SASL_PASSWORD=hunter2")
    assert result.returncode != 0
    assert "services.routing.env.KAFKA_SASL_PASSWORD looks like a secret" in result.stderr
    assert "hunter2" not in result.stdout
    as_value = _template(helm, *REQUIRED, "--set", "services.intake.secretEnv.INTAKE_FORM_SECRET=hunter2")
    assert as_value.returncode != 0 and "a reference to a Secret, not a value" in as_value.stderr


def test_what_an_operator_must_give_is_named_when_missing(helm):
    result = _template(helm)
    assert result.returncode != 0 and "kafka.bootstrapServers is required" in result.stderr
    no_catalogue = _template(helm, *REQUIRED[:4])
    assert no_catalogue.returncode != 0 and "--set-file catalogue.toml=catalogue/kiruna.toml" in no_catalogue.stderr


def test_the_catalogue_configmap_is_the_repository_catalogue_mounted_where_catalogue_path_points(objects):
    catalogue = _by_kind(objects, "ConfigMap")["kiruna-catalogue"]["data"]["kiruna.toml"]
    assert catalogue.strip() == (ROOT / "catalogue" / "kiruna.toml").read_text().strip()
    path = Path(_settings_map(objects)["CATALOGUE_PATH"])
    for workload in _workloads(objects).values():
        pod = workload["spec"]["template"]["spec"]
        (mount,) = [m for m in _container(workload)["volumeMounts"] if m["name"] == "catalogue"]
        assert mount["mountPath"] == str(path.parent) and "subPath" not in mount  # edits reach the pods
        (volume,) = [v for v in pod["volumes"] if v["name"] == "catalogue"]
        assert volume["configMap"]["name"] == "kiruna-catalogue"


@pytest.mark.parametrize("service", list(SERVICES))
def test_each_service_accepts_the_rendered_settings_in_production(objects, service, monkeypatch):
    """The settings class itself reads the pod's environment (the ConfigMap, the plain env and, for each Secret
    reference, a stand-in value): a name it does not know, or a missing secret, fails here as it would in the pod."""
    workload = _workloads(objects)[service]
    environment = dict(_settings_map(objects))
    for entry in _container(workload)["env"]:
        if "value" in entry:
            environment[entry["name"]] = entry["value"]
        elif "secretKeyRef" in entry["valueFrom"]:
            environment[entry["name"]] = STAND_INS.get(entry["name"], f"{entry['name']}-from-its-secret")
        else:  # the downward API: ROUTING_INSTANCE is the pod's name
            assert entry["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
            environment[entry["name"]] = f"kiruna-{service}-0"
    for name in list(os.environ):
        if name.startswith(OWN_PREFIXES):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = SERVICES[service]()
    refuse_development_secrets(settings)  # production: every secret set, none a development value
    assert settings.environment == "production"
    assert settings.host == "0.0.0.0" and settings.port == SERVICES[service].model_fields["port"].default
    assert settings.kafka.bootstrap_servers.count(",") == 2 and settings.kafka.security_protocol == "SASL_SSL"
    assert settings.kafka.sasl_username == service and settings.kafka.sasl_password is not None
    assert str(settings.catalogue_path) == "/etc/kiruna/catalogue/kiruna.toml"
    assert OpsSettings().shutdown_timeout_s == 30
    if service == "routing":
        assert settings.transactional_id == "routing-kiruna-routing-0"
