"""The local realm follows the catalogue: the committed realm file is the catalogue's, and the sync against the
running Keycloak is idempotent (the catalogue says who is an officer where)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.kafka
REALM = Path(__file__).resolve().parents[2] / "deploy" / "keycloak" / "realm.py"


def realm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REALM), *args], capture_output=True, text=True, timeout=120)


def test_the_committed_realm_file_is_the_catalogues():
    checked = realm("check")
    assert checked.returncode == 0, checked.stderr


def test_syncing_the_officers_twice_changes_nothing_the_second_time():
    first = realm("sync")
    assert first.returncode == 0, first.stderr
    second = realm("sync")
    assert second.returncode == 0, second.stderr
    assert "0 created, 0 updated" in second.stdout and "0 demoted" in second.stdout, second.stdout


def test_a_sync_against_no_keycloak_says_so_in_one_line():
    refused = realm("sync", "--url", "http://127.0.0.1:9")
    assert refused.returncode == 1
    assert refused.stderr.startswith("keycloak: cannot sync the officers with http://127.0.0.1:9")
