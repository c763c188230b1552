"""Intake's door without Kafka: bad input is refused naming the field; nothing reaches the broker. The factory app
runs on an in-memory store (tests/fakes/intake.py), so these need neither Kafka nor Redis."""

from __future__ import annotations

import httpx
import pytest

from services.intake.app import create_app
from services.intake.domain import detect_language, submitted_event
from services.intake.models import IdeaIn
from services.intake.settings import IntakeSettings
from tests.fakes.intake import FakeIntakeStore


@pytest.fixture
async def intake():
    # lifespan not started: no Kafka connection is attempted, and the store is in memory
    app = create_app(IntakeSettings(), store=FakeIntakeStore())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"description": "saknar titel", "anonymous": True}, "title"),
        ({"title": "ab", "anonymous": True}, "title"),
        ({"title": "x" * 201, "anonymous": True}, "title"),
        ({"title": "En idé", "description": "x" * 10_001, "anonymous": True}, "description"),
        ({"title": "En idé", "submitter": {"name": "Anna"}}, "submitter"),  # the submitter is the token's
        ({"title": "En idé", "anonymous": True, "submitter": {"name": "Anna"}}, "submitter"),
        ({"title": "En idé", "anonymous": True, "language": "fi"}, "language"),
        ({"title": "En idé", "anonymous": True, "area_hints": ["Not A Slug!"]}, "area_hints.0"),
        ({"title": "En idé", "anonymous": True, "colour": "red"}, "colour"),
    ],
)
async def test_bad_input_is_refused_naming_the_field(intake, body, field):
    response = await intake.post("/api/v1/ideas", json=body)
    assert response.status_code == 422
    assert field in [error["field"] for error in response.json()["errors"]], response.json()


async def test_a_body_that_is_not_json_is_a_422_not_a_500(intake):
    response = await intake.post("/api/v1/ideas", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


async def test_a_valid_idea_without_kafka_is_503_not_2xx(intake):
    response = await intake.post("/api/v1/ideas", json={"title": "En idé", "anonymous": True})
    assert response.status_code == 503 and "Retry-After" in response.headers


def test_an_anonymous_idea_keeps_no_personal_data():
    event = submitted_event(IdeaIn(title="Bättre belysning", anonymous=True), "i1")
    assert event.submitter is None and event.anonymous


def test_the_language_is_detected_when_absent():
    assert detect_language("Vi borde ansluta badhuset till fjärrvärmen") == "sv"
    assert detect_language("We should connect the swimming hall to district heating") == "en"
    assert detect_language("") == "sv"
    event = submitted_event(
        IdeaIn(title="Snow clearing of the bicycle paths", description="It would help all of us", anonymous=True), "i2"
    )
    assert event.language == "en"


async def test_without_redis_a_write_is_503_not_500():
    app = create_app(IntakeSettings(redis_url="redis://127.0.0.1:1/0", redis_pool_timeout_s=0.5))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post("/api/v1/ideas", json={"title": "En idé", "anonymous": True})
    assert response.status_code == 503 and "nothing was stored" in response.json()["detail"]
    assert "Retry-After" in response.headers


async def test_a_named_idea_without_sign_in_is_a_401_saying_so(intake):
    response = await intake.post("/api/v1/ideas", json={"title": "En idé"})
    assert response.status_code == 401 and "sign-in" in response.json()["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
