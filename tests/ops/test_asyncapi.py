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
from shared.catalogue import load_catalogue
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
    "intake": {T.submitted, T.status_changed, T.engagement, T.routing_commands},
    "routing": {T.routed, *(T.organisation(org) for org in load_catalogue().organisation_ids)},
    "notifications": {T.notifications_sent, T.preferences},
    "analytics": set(),
}
READS = {
    "intake": {T.intake_raw, T.submitted, T.routed, T.status_changed, T.engagement},
    "routing": {T.submitted, T.routing_commands},
    "notifications": {T.submitted, T.routed, T.status_changed, T.engagement, T.preferences},
    "analytics": {T.submitted, T.routed, T.status_changed, T.engagement, T.notifications_sent},
}


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
    assert {f"{topic}.dlq" for topic in READS[service]} <= written
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
            assert example["payload"]["data"]["idea_id" if "idea_id" in data["properties"] else "person"]
            assert example["headers"]["ce_type"] == example["payload"]["type"]
        elif schema["title"] == "IdeaIn":
            IdeaIn.model_validate(message["examples"][0]["payload"])
    # the readable page: every topic, field descriptions, nothing loaded from elsewhere
    for topic in written | READS[service]:
        assert f"<code>{topic}</code>" in page
    assert "Id of the idea" in page
    assert not re.search(r"<(script|link|img)\b", page), "the page must not load anything"
    assert "asyncapi.json" in page


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
