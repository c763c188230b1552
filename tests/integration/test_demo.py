"""make demo's loader on a small slice, against the real Kafka, Redis and Keycloak with the services in-process:
the read side shows the history it loaded (states, figures), and a second run loads nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from demo.load import DemoLoader
from demo.plan import load_data, plan_history
from services.analytics.app import create_app as analytics_app
from services.analytics.settings import AnalyticsSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.catalogue import load_catalogue
from tests.support.apps import running
from tests.support.identity import token
from tests.support.kafka import eventually

pytestmark = pytest.mark.kafka

SLICE = {
    "Fjärrvärme till det nya badhuset": "implemented",
    "Digital nyckel för hyresgäster": "spread",
    "Belysning på skidspåren längre in på kvällen": "declined",
    "Kylrum för livsmedel i föreningslokaler": "withdrawn",
    "Uppvärmda busshållplatser i nya centrum": "in-pilot",
    "Grillplatser vid Luossajärvi": "routed",  # open: the one sent through intake's API
}


async def test_the_demo_history_shows_on_the_read_side_and_loads_once(service_settings, topics):
    settings = service_settings(IntakeSettings)
    plans = plan_history(load_data(), load_catalogue(), datetime.now(UTC), api_ideas=1, titles=set(SLICE))
    assert {p.title: p.state.value for p in plans if not p.through_api} == {
        t: s for t, s in SLICE.items() if s != "routed"
    }
    assert [p.title for p in plans if p.through_api] == ["Grillplatser vid Luossajärvi"]
    async with (
        running(intake_app(settings)) as intake,
        running(routing_app(service_settings(RoutingSettings))),
        running(analytics_app(service_settings(AnalyticsSettings))) as analytics,
    ):
        loader = DemoLoader(settings, intake=intake, token=token, progress=False)
        try:
            first = await loader.load(plans)
        finally:
            await loader.close()
        events = sum(len(p.steps) for p in plans if not p.through_api)  # one event per step
        assert first.published == events and first.already == 0 and first.api_ideas == 1, first.line()

        async def states() -> dict[str, str] | None:
            found = {}
            for plan in plans:
                if plan.through_api:
                    continue
                answer = await analytics.get(f"/api/v1/ideas/{plan.idea_id}")
                if answer.status_code != 200:
                    return None
                found[plan.title] = answer.json()["state"]
            wanted = {p.title: p.state.value for p in plans if not p.through_api}
            return found if found == wanted else None

        assert await eventually(states, timeout=60)
        idea = (await analytics.get(f"/api/v1/ideas/{plans[0].idea_id}")).json()
        first_seen = min(entry["time"] for entry in idea["timeline"])
        assert first_seen[:10] == plans[0].submitted_at.date().isoformat()  # the past date, not today's
        assert "@" not in str(idea)  # people are sealed: no address on the public side

        async def api_idea() -> list | None:
            answer = await analytics.get("/api/v1/ideas", params={"q": "Grillplatser Luossajärvi"})
            items = answer.json().get("items", []) if answer.status_code == 200 else []
            return [i for i in items if i.get("title") == "Grillplatser vid Luossajärvi"] or None

        assert await eventually(api_idea, timeout=60)

        async def funnel() -> dict | None:
            figures = (await analytics.get("/api/v1/stats/funnel")).json()
            return figures if figures["total"] == len(SLICE) else None

        figures = await eventually(funnel, timeout=30)
        reached = {stage["stage"]: stage["count"] for stage in figures["stages"]}
        assert (reached["acknowledged"], reached["in-pilot"], reached["implemented"], reached["spread"]) == (4, 3, 2, 1)
        assert figures["exits"] == {"declined": 1, "merged": 0, "withdrawn": 1}

        again = DemoLoader(settings, intake=intake, token=token, progress=False)
        try:
            second = await again.load(plans)
        finally:
            await again.close()
        assert second.published == 0 and second.api_ideas == 0, second.line()
        assert second.already == first.published and second.api_already == 1, second.line()
