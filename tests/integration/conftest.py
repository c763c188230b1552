"""Fixtures of the notifications tests (the service's settings, with a test catalogue)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.notifications.settings import NotificationsSettings
from shared.catalogue import DEFAULT_CATALOGUE_PATH
from tests.support.notifications import EXTRA_OFFICER


@pytest.fixture
def catalogue_path(tmp_path: Path) -> Path:
    path = tmp_path / "catalogue.toml"
    path.write_text(DEFAULT_CATALOGUE_PATH.read_text(encoding="utf-8") + EXTRA_OFFICER, encoding="utf-8")
    return path


@pytest.fixture
def settings_for(service_settings, catalogue_path):
    def build(smtp_port: int, **overrides) -> NotificationsSettings:
        values = dict(
            smtp_port=smtp_port,
            catalogue_path=catalogue_path,
            retry_base_s=0.2,
            retry_max_s=1.0,
            delivery_poll_s=0.1,
            deadline_check_interval_s=3600,
            public_base_url="https://innovation.kiruna.se",
            public_url="https://notifications.kiruna.se",
            unsubscribe_secret="test-secret",
        )
        values.update(overrides)
        return service_settings(NotificationsSettings, **values)

    return build
