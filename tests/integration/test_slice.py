"""The walking skeleton end to end on the real Kafka and Redis: submit -> routed -> notified -> timeline."""

from __future__ import annotations

import json

import pytest

from services.analytics.app import create_app as analytics_app
from services.analytics.settings import AnalyticsSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.notifications.app import create_app as notifications_app
from services.notifications.settings import NotificationsSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from tests.support.apps import running
from tests.support.identity import ANNA, bearer
from tests.support.kafka import eventually, probe

pytestmark = pytest.mark.kafka

IDEA = {
    "title": "Fjärrvärme till det nya badhuset",
    "description": "Det nya badhuset värms med el. Anslut det till fjärrvärmenätet när det byggs om.",
}


async def test_an_idea_travels_from_intake_to_every_service(service_settings, topics, kafka_settings):
    async with (
        running(intake_app(service_settings(IntakeSettings))) as intake,
        running(routing_app(service_settings(RoutingSettings))),
        running(notifications_app(service_settings(NotificationsSettings))) as notifications,
        running(analytics_app(service_settings(AnalyticsSettings))) as analytics,
        probe(kafka_settings, topics.organisation("tekniska-verken")) as energy_topic,
    ):
        response = await intake.post("/api/v1/ideas", json=IDEA, headers=bearer(ANNA))  # Anna submits it
        assert response.status_code == 202, response.text
        idea_id = response.json()["idea_id"]
        assert response.json()["status_url"].endswith(f"/ideas/{idea_id}")

        async def routed_timeline():
            answer = await analytics.get(f"/api/v1/ideas/{idea_id}")
            if answer.status_code != 200:
                return None
            # analytics reads the topics independently: the routing may be in the timeline a moment before the
            # submission; both end up there, in the order they happened
            return answer.json() if len(answer.json()["timeline"]) == 2 else None

        idea = await eventually(routed_timeline, timeout=30)
        assert [entry["kind"] for entry in idea["timeline"]] == ["submitted", "routed"] and idea["state"] == "routed"
        assert "tekniska-verken" in {target["organisation"] for target in idea["organisations"]}
        assert "Anna" not in json.dumps(idea) and "kiruna.se" not in json.dumps(idea)  # no personal data

        async def feed():
            answer = await notifications.get("/api/v1/people/me/feed", headers=bearer(ANNA))
            return answer.json()["items"]

        items = await eventually(feed, timeout=30)
        assert items[0]["idea_id"] == idea_id and items[0]["kind"] == "routed"
        assert "Tekniska Verken" in items[0]["text"] and items[0]["text"].startswith("Din idé")

        # an organisation's own system, subscribed to just its topic, gets the routed event as CloudEvents JSON
        records = await energy_topic.wait_for(lambda rs: any(r.key == idea_id.encode() for r in rs))
        event = json.loads(next(r for r in records if r.key == idea_id.encode()).value)
        assert event["type"] == "se.kiruna.innovation.idea.routed.v1" and event["subject"] == idea_id
        assert dict(records[-1].headers)["content-type"].startswith(b"application/cloudevents+json")
