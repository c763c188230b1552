"""Fixtures of the operations tests: Prometheus's promtool and the AsyncAPI CLI, installed by the project's
own scripts (deploy/promtool.sh, deploy/asyncapi.sh) when missing; the local three-broker cluster
(deploy/kafka/cluster.sh) and its superuser's settings."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from shared.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CLUSTER = str(DEPLOY / "kafka" / "cluster.sh")


def _installed(script: str, what: str) -> str:
    try:
        result = subprocess.run([str(DEPLOY / script)], capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"{what} could not be installed by deploy/{script}: {exc!r}")
    path = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    if result.returncode != 0 or not path:
        pytest.skip(f"{what} could not be installed by deploy/{script}: {result.stderr.strip()[-500:]}")
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return _installed("promtool.sh", "Prometheus's promtool")


@pytest.fixture(scope="session")
def asyncapi_cli() -> str:
    return _installed("asyncapi.sh", "the AsyncAPI CLI")


@pytest.fixture(scope="session")
def cluster() -> str:
    """The three-broker cluster's bootstrap servers; started for these tests unless it already runs (its `up`
    also creates the services' and organisations' users and ACLs), and stopped and removed at the end if so."""
    started = False
    if subprocess.run([CLUSTER, "status"], capture_output=True, check=False).returncode != 0:
        result = subprocess.run([CLUSTER, "up"], capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stderr[-2000:] + result.stdout[-2000:]
        started = True
    bootstrap = subprocess.run([CLUSTER, "bootstrap"], capture_output=True, text=True, check=True).stdout.strip()
    yield bootstrap
    if started:
        subprocess.run([CLUSTER, "down", "--purge"], capture_output=True, timeout=120, check=False)  # as we found it


@pytest.fixture(scope="session")
def cluster_admin_env(cluster: str) -> dict[str, str]:
    """The superuser's KAFKA_* settings, as `deploy/kafka/cluster.sh env` prints them."""
    printed = subprocess.run([CLUSTER, "env"], capture_output=True, text=True, check=True).stdout
    words = [w for w in shlex.split(printed) if w != "export"]
    return dict(word.split("=", 1) for word in words)


def cluster_settings(admin_env: dict[str, str], **values) -> KafkaSettings:
    """KafkaSettings on the cluster as its superuser (``values`` override, e.g. another user)."""
    base = {key.removeprefix("KAFKA_").lower(): value for key, value in admin_env.items()}
    return KafkaSettings(**{**base, **values})
