"""The delivery rules of the design, on the real Kafka and Redis: idempotent redelivery, dead letters,
no 2xx without Kafka's acknowledgement."""

from __future__ import annotations

import json
import uuid

import pytest

from services.analytics.app import create_app as analytics_app
from services.analytics.settings import AnalyticsSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.notifications.app import create_app as notifications_app
from services.notifications.settings import NotificationsSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.events import Envelope, IdeaSubmitted, PersonRef
from shared.settings import KafkaSettings
from tests.integration.test_analytics_projections import people_keyring
from tests.support.apps import running
from tests.support.identity import EMAIL, PER, bearer
from tests.support.kafka import eventually, probe, raw_producer

pytestmark = pytest.mark.kafka


def submitted(idea_id: str, per: PersonRef | None = None, title: str = "Solceller på skolans tak") -> Envelope:
    """Per's idea (sealed as intake seals him: ``keyring.person_ref``), or an anonymous one."""
    idea = IdeaSubmitted(
        idea_id=idea_id,
        title=title,
        description="Sätt solceller på förskolans tak.",
        submitter=per,
        anonymous=per is None,
    )
    return Envelope.wrap(idea, source="/tests")


async def per_niemi(settings) -> PersonRef:
    async with people_keyring(settings) as keyring:
        return (await keyring.person_ref(EMAIL[PER], "Per Niemi", organisation="kirunabostader"))[0]


async def test_the_same_event_delivered_twice_changes_nothing_the_second_time(service_settings, topics, kafka_settings):
    idea_id = str(uuid.uuid4())
    per = await per_niemi(service_settings(AnalyticsSettings))
    event = submitted(idea_id, per)
    async with (
        running(routing_app(service_settings(RoutingSettings))) as routing,
        running(notifications_app(service_settings(NotificationsSettings))) as notifications,
        running(analytics_app(service_settings(AnalyticsSettings))) as analytics,
        probe(kafka_settings, topics.routed) as routed,
        probe(kafka_settings, topics.notifications_sent) as sent,
        raw_producer(kafka_settings) as producer,
    ):
        for _ in range(2):
            await producer.send_and_wait(topics.submitted, event.to_bytes(), key=idea_id.encode())
        await routed.wait_count(1)
        await sent.wait_count(1)
        # a second, later event proves that the duplicate has been consumed by then (same partition, in order)
        marker = submitted(idea_id, per)
        await producer.send_and_wait(topics.submitted, marker.to_bytes(), key=idea_id.encode())
        await routed.wait_count(2)

        async def timeline():  # a 404 while the idea is being projected is "not yet" (issue 15: KeyError 'timeline')
            answer = await analytics.get(f"/api/v1/ideas/{idea_id}")
            if answer.status_code == 404:
                return None
            assert answer.status_code == 200, answer.text
            body = answer.json()
            return body if len(body["timeline"]) >= 4 else None

        idea = await eventually(timeline)
        ids = [entry["event_id"] for entry in idea["timeline"]]
        assert len(ids) == len(set(ids)) == 4  # two submissions, two routings: the duplicate left no trace
        assert [json.loads(r.value)["data"]["idea_id"] for r in routed.records] == [idea_id, idea_id]
        routed_ids = sorted(json.loads(r.value)["id"] for r in routed.records)

        async def feed_causes():
            items = (await notifications.get("/api/v1/people/me/feed", headers=bearer(PER))).json()["items"]
            causes = sorted(item["cause_event_id"] for item in items)
            return causes if len(causes) >= 2 else None

        assert await eventually(feed_causes) == routed_ids  # one item per routing, none for the duplicate
        metrics = (await routing.get("/metrics")).text
        assert 'kiruna_idempotent_skips_total{service="routing"' in metrics


async def test_a_malformed_message_goes_to_the_dlq_and_the_next_one_is_processed(
    service_settings, topics, kafka_settings
):
    good_id = str(uuid.uuid4())
    async with (
        running(routing_app(service_settings(RoutingSettings))) as routing,
        probe(kafka_settings, topics.routed) as routed,
        probe(kafka_settings, topics.dlq(topics.submitted)) as dead_letters,
        raw_producer(kafka_settings) as producer,
    ):
        bad_key = b"not-an-idea"
        await producer.send_and_wait(
            topics.submitted, b"{this is not json", key=bad_key, headers=[("origin", b"a foreign system")]
        )
        await producer.send_and_wait(
            topics.submitted, json.dumps({"specversion": "1.0", "id": "x"}).encode(), key=bad_key
        )
        await producer.send_and_wait(topics.submitted, submitted(good_id).to_bytes(), key=good_id.encode())

        await routed.wait_for(lambda records: any(r.key == good_id.encode() for r in records))
        records = await dead_letters.wait_count(2)
        first = records[0]
        headers = {name: value.decode() for name, value in first.headers}
        assert first.value == b"{this is not json" and first.key == bad_key
        assert headers["origin"] == "a foreign system"  # original headers kept
        assert headers["x-dlq-reason"] == "malformed"
        assert headers["x-dlq-source-topic"] == topics.submitted
        assert headers["x-dlq-source-offset"].isdigit() and headers["x-dlq-source-partition"].isdigit()
        # parsed straight into the model (model_validate_json): pydantic names the JSON error and where it is
        assert "ValidationError" in headers["x-dlq-error-type"] and "Invalid JSON" in headers["x-dlq-error"]
        second = {name: value.decode() for name, value in records[1].headers}
        assert "data" in second["x-dlq-error"]  # names the missing field
        metrics = (await routing.get("/metrics")).text
        series = f'kiruna_dead_letters_total{{reason="malformed",service="routing",topic="{topics.submitted}"}} '
        [counted] = [float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(series)]
        assert counted >= 2  # the series exists at 0 from the start: counted, not merely present


async def test_a_handler_that_keeps_failing_is_retried_then_dead_lettered(service_settings, topics, kafka_settings):
    class BrokenRouter:
        catalogue_version = "test"

        def route(self, *args, **kwargs):
            raise RuntimeError("the router is broken")

    idea_id = str(uuid.uuid4())
    async with (
        running(routing_app(service_settings(RoutingSettings), router=BrokenRouter())),
        probe(kafka_settings, topics.dlq(topics.submitted)) as dead_letters,
        raw_producer(kafka_settings) as producer,
    ):
        await producer.send_and_wait(topics.submitted, submitted(idea_id).to_bytes(), key=idea_id.encode())
        records = await dead_letters.wait_count(1)
        headers = {name: value.decode() for name, value in records[0].headers}
        assert headers["x-dlq-reason"] == "failed" and headers["x-dlq-attempts"] == "3"
        assert "the router is broken" in headers["x-dlq-error"]


async def test_intake_answers_503_with_retry_after_when_kafka_is_down(service_settings):
    nowhere = KafkaSettings(bootstrap_servers="127.0.0.1:1", publish_timeout_s=1)
    app = intake_app(service_settings(IntakeSettings, kafka=nowhere))
    async with running(app, wait_for_kafka=False) as intake:
        response = await intake.post("/api/v1/ideas", json={"title": "En idé", "anonymous": True})
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0
        assert "nothing was stored" in response.json()["detail"]
        ready = await intake.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["kafka"] != "ok"
