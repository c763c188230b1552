"""An administrator edits the catalogue file and every service follows without a restart: intake accepts the new
area as a hint, notifications lets people follow it, analytics filters by it. A broken edit is refused and the
last good catalogue stays in use."""

from __future__ import annotations

import shutil

import pytest

from services.analytics.app import create_app as analytics_app
from services.analytics.settings import AnalyticsSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.notifications.app import create_app as notifications_app
from shared.catalogue import DEFAULT_CATALOGUE_PATH
from tests.support.apps import running
from tests.support.identity import PER, bearer
from tests.support.kafka import eventually
from tests.support.notifications import free_port

pytestmark = pytest.mark.kafka

NEW_AREA = """
[[areas]]
id = "gruvstaden"
name = "Gruvstaden"
name_en = "The mining town"
responsible = ["kiruna-kommun/samhallsbyggnad"]
"""
IDEA = {"title": "Guidade turer i gruvstaden", "description": "Visa flyttningen för besökare.", "anonymous": True}


async def test_every_service_follows_an_edited_catalogue_and_refuses_a_broken_one(
    service_settings, settings_for, topics, tmp_path
):
    path = tmp_path / "catalogue.toml"
    shutil.copy(DEFAULT_CATALOGUE_PATH, path)
    reload = {"catalogue_path": path, "catalogue_check_interval_s": 0.1}
    async with (
        running(intake_app(service_settings(IntakeSettings, rate_limit_per_minute=1000, **reload))) as intake,
        running(notifications_app(settings_for(free_port(), **reload))) as notifications,
        running(analytics_app(service_settings(AnalyticsSettings, **reload))) as analytics,
    ):
        services = (intake, notifications, analytics)

        async def submit():
            return await intake.post("/api/v1/ideas", json={**IDEA, "area_hints": ["gruvstaden"]})

        async def follow():
            return await notifications.put(
                "/api/v1/people/me/preferences", json={"areas": ["gruvstaden"]}, headers=bearer(PER)
            )

        async def figures():
            return await analytics.get("/api/v1/stats/overview", params={"area": "gruvstaden"})

        refused = [await submit(), await follow(), await figures()]
        assert [answer.status_code for answer in refused] == [422, 422, 422]
        assert all("gruvstaden" in answer.text for answer in refused)

        path.write_text(path.read_text() + '\n[[organisations]]\nid = "BROKEN ID"\nname = "x"\n')

        async def every_service_refused_it() -> bool:
            metrics = [(await service.get("/metrics")).text for service in services]
            return all("kiruna_catalogue_reload_errors_total 1.0" in text for text in metrics)

        await eventually(every_service_refused_it, timeout=10)
        assert (await submit()).status_code == 422  # the last good catalogue is still in use

        shutil.copy(DEFAULT_CATALOGUE_PATH, path)
        path.write_text(path.read_text() + NEW_AREA)

        async def accepted() -> bool:
            return [(await call()).status_code for call in (submit, follow, figures)] == [202, 200, 200]

        await eventually(accepted, timeout=10)
