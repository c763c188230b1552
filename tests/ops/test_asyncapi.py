"""Every service serves its AsyncAPI document (/asyncapi.json) and a readable page of it (/asyncapi); the
documents validate with the official AsyncAPI CLI and list every topic with schema, descriptions and example."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from services.analytics.app import create_app as analytics_app
from services.analytics.settings import AnalyticsSettings
from services.intake.app import create_app as intake_app
from services.intake.models import IdeaIn
from services.intake.settings import IntakeSettings
from services.notifications.app import create_app as notifications_app
from services.notifications.settings import NotificationsSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.asyncapi import _EXAMPLE_SECRET, EXAMPLE_PSEUDONYM, SEALED_EXAMPLES, asyncapi_document
from shared.catalogue import load_catalogue
from shared.events import (
    PAYLOAD_BY_TYPE,
    EngagementEvent,
    ErasureRequestedEvent,
    PersonKeyEvent,
    SubmittedEvent,
    utc_now,
)
from shared.sealing import DataKey, open_json, open_sealed
from shared.settings import KafkaSettings
from shared.topics import Topics

pytestmark = pytest.mark.ops

APPS = {
    "intake": (intake_app, IntakeSettings),
    "routing": (routing_app, RoutingSettings),
    "notifications": (notifications_app, NotificationsSettings),
    "analytics": (analytics_app, AnalyticsSettings),
}
T = Topics()
WRITES = {
    "intake": {
        T.submitted,
        T.status_changed,
        T.engagement,
        T.edited,
        T.assignments,
        T.challenges,
        T.routing_commands,
        T.people_erasures,
        T.people_keys,
    },
    "routing": {T.routed, *(T.organisation(org) for org in load_catalogue().organisation_ids)},
    "notifications": {T.notifications_sent, T.preferences, T.people_keys},
    "analytics": set(),
}
SUBSCRIBED = {
    "intake": {
        T.intake_raw,
        T.submitted,
        T.routed,
        T.status_changed,
        T.engagement,
        T.edited,
        T.assignments,
        T.challenges,
        T.people_erasures,
    },
    "routing": {T.submitted, T.edited, T.routing_commands, T.people_erasures},
    "notifications": {
        T.submitted,
        T.routed,
        T.status_changed,
        T.engagement,
        T.edited,
        T.assignments,
        T.challenges,
        T.preferences,
        T.people_erasures,
    },
    "analytics": {
        T.submitted,
        T.routed,
        T.status_changed,
        T.engagement,
        T.edited,
        T.assignments,
        T.challenges,
        T.notifications_sent,
        T.people_erasures,
    },
}
READS = {service: {*topics, T.people_keys} for service, topics in SUBSCRIBED.items()}  # every keyring reads the keys
PERSONAL = ("anna.svensson@kiruna.se", "Anna Svensson")


async def served(service: str) -> tuple[dict, str]:
    create, settings = APPS[service]
    app = create(settings(smtp_port=0) if "smtp_port" in settings.model_fields else settings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        document = await client.get("/asyncapi.json")
        page = await client.get("/asyncapi")
    assert document.status_code == 200 and page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    return document.json(), page.text


def addresses(document: dict, action: str) -> set[str]:
    channels = document["channels"]
    return {
        channels[op["channel"]["$ref"].rsplit("/", 1)[-1]]["address"]
        for op in document["operations"].values()
        if op["action"] == action
    }


@pytest.mark.parametrize("service", list(APPS))
async def test_the_document_lists_every_topic_with_schema_descriptions_and_example(service):
    document, page = await served(service)
    assert document["asyncapi"] == "3.0.0"
    written = addresses(document, "send")
    assert WRITES[service] <= written, WRITES[service] - written
    assert {f"{topic}.dlq" for topic in SUBSCRIBED[service]} <= written
    assert f"{T.people_keys}.dlq" not in written  # read by the keyring, not a subscriber: nothing to dead-letter
    assert addresses(document, "receive") == READS[service]
    schemas = document["components"]["schemas"]
    for key, message in document["components"]["messages"].items():
        assert message.get("examples"), f"{key} has no example"
        ref = message["payload"].get("$ref")
        if ref is None:
            continue
        schema = schemas[ref.rsplit("/", 1)[-1].replace("%5B", "[").replace("%5D", "]")]
        if schema["title"].startswith("Envelope["):
            assert message["contentType"] == "application/cloudevents+json"
            assert {"ce_id", "ce_type", "ce_subject", "traceparent"} <= set(message["headers"]["properties"])
            data = schemas[schema["properties"]["data"]["$ref"].rsplit("/", 1)[-1]]
            assert data.get("description"), f"{data['title']} has no description"
            undocumented = [f for f, sub in data["properties"].items() if not sub.get("description")]
            assert not undocumented, f"{data['title']}: fields without description {undocumented}"
            example = message["examples"][0]
            model = PAYLOAD_BY_TYPE[example["payload"]["type"]]
            assert example["payload"]["subject"] == example["payload"]["data"][model.subject_field]
            assert example["headers"]["ce_type"] == example["payload"]["type"]
            assert not any(value in json.dumps(example, ensure_ascii=False) for value in PERSONAL), key
        elif schema["title"] == "IdeaIn":
            IdeaIn.model_validate(message["examples"][0]["payload"])
    # the readable page: every topic, field descriptions, nothing loaded from elsewhere
    for topic in written | READS[service]:
        assert f"<code>{topic}</code>" in page
    assert "Id of the idea" in page
    assert not re.search(r"<(script|link|img)\b", page), "the page must not load anything"
    assert "asyncapi.json" in page


def messages_of(document: dict, address: str) -> list[dict]:
    """The messages (with their examples) of the channel whose topic is ``address``."""
    found = []
    for channel in document["channels"].values():
        if channel["address"] == address:
            for ref in channel["messages"].values():
                found.append(document["components"]["messages"][ref["$ref"].rsplit("/", 1)[-1]])
    return found


async def test_the_documents_show_the_people_s_events_and_the_sealed_personal_fields():
    """Issue 13: the v2 payloads with PersonRef and Sealed, PersonKey on people.keys.v1 (every service reads it)
    and PersonErasureRequested on people.erasures.v1, each keyed by the person's pseudonym; the examples parse and
    their sealed values open with the example key, so an organisation sees exactly what a consumer gets."""
    intake, _ = await served("intake")
    schemas = intake["components"]["schemas"]
    assert {"PersonRef", "Sealed", "PersonKey", "PersonErasureRequested"} <= set(schemas)
    assert schemas["IdeaSubmitted"]["properties"]["submitter"]["anyOf"][0]["$ref"].endswith("/PersonRef")
    assert schemas["PersonRef"]["properties"]["sealed"]["$ref"].endswith("/Sealed")
    assert schemas["IdeaEngagement"]["properties"]["text"]["anyOf"][0]["$ref"].endswith("/Sealed")

    key = DataKey(
        key_id=SEALED_EXAMPLES["sealed"]["key"], pseudonym=EXAMPLE_PSEUDONYM, secret=_EXAMPLE_SECRET, created=utc_now()
    )
    [submitted] = [m for m in messages_of(intake, T.submitted) if m.get("examples")][:1]
    event = SubmittedEvent.parse(submitted["examples"][0]["payload"])
    assert event.data.submitter.pseudonym == EXAMPLE_PSEUDONYM
    assert open_json(key, event.data.submitter.sealed) == {"name": "Anna Svensson", "email": PERSONAL[0]}
    [engagement] = messages_of(intake, T.engagement)[:1]
    comment = EngagementEvent.parse(engagement["examples"][0]["payload"])
    assert open_sealed(key, comment.data.text) == "Bra idé, vi tittar på det i vår."
    [erasure] = messages_of(intake, T.people_erasures)[:1]
    erased = ErasureRequestedEvent.parse(erasure["examples"][0]["payload"])
    assert erased.subject == erased.data.pseudonym == EXAMPLE_PSEUDONYM
    assert erased.type == "se.kiruna.innovation.person.erasure-requested.v1"

    for service in APPS:
        document, page = await served(service)
        [keys] = messages_of(document, T.people_keys)
        record = PersonKeyEvent.parse(keys["examples"][0]["payload"])
        assert record.subject == record.data.pseudonym and record.type == "se.kiruna.innovation.person.key.v1"
        assert record.data.key_id.startswith(f"{record.data.pseudonym}.")
        assert "tombstone" in page and "PersonKey" in page


def test_the_keys_channel_takes_the_prefix_of_the_services_topics():
    create, settings = APPS["analytics"]
    app = create(settings(kafka=KafkaSettings(topic_prefix="x.")))
    document = asyncapi_document(app.state.runtime.broker, service="analytics", title="a", description="d")
    assert "x.people.keys.v1" in addresses(document, "receive")


async def test_every_document_validates_with_the_asyncapi_cli(asyncapi_cli, tmp_path: Path):
    for service in APPS:
        document, _ = await served(service)
        path = tmp_path / f"{service}.json"
        path.write_text(json.dumps(document, ensure_ascii=False))
        result = await asyncio.to_thread(
            subprocess.run,
            [asyncapi_cli, "validate", str(path), "--fail-severity", "warn"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0 and "is valid" in output, f"{service}:\n{output}"
