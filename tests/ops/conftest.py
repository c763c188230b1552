"""Fixtures of the operations tests: Prometheus's promtool and the AsyncAPI CLI, installed by the project's
own scripts (deploy/promtool.sh, deploy/asyncapi.sh) when missing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


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
