"""Limits at every door of every service, against the real Redis (and Keycloak for a signed-in person): writes and
expensive queries per person or address (429 with Retry-After), X-Forwarded-For believed only from a trusted
proxy, and bodies counted as received, chunked ones too (413). A limit answers before any work is done, so the
apps run without their lifespan: no Kafka needed."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.analytics.app import create_app as analytics_app
from services.analytics.settings import AnalyticsSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.notifications.app import create_app as notifications_app
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from tests.support.http_server import serving
from tests.support.identity import ANNA, bearer

pytestmark = pytest.mark.kafka  # the real Redis (make test starts it with Kafka)

SERVICES = ("intake", "routing", "notifications", "analytics")
# A write at each service's door (what it answers without the limit does not matter: 401, 405, 422 ...)
WRITES = {
    "intake": ("POST", "/api/v1/ideas"),
    "routing": ("POST", "/api/v1/route"),
    "notifications": ("PUT", "/api/v1/people/me/preferences"),
    "analytics": ("POST", "/api/v1/ideas"),
}
# The services' doors that read a body
BODY_DOORS = {"intake": WRITES["intake"], "notifications": WRITES["notifications"]}


@pytest.fixture
def app_of(service_settings, settings_for):
    """``app_of("routing", rate_limit_per_minute=2)``: a service's factory app with these settings."""

    def build(service: str, **overrides: Any) -> FastAPI:
        if service == "notifications":
            return notifications_app(settings_for(smtp_port=2599, **overrides))
        settings_class, factory = {
            "intake": (IntakeSettings, intake_app),
            "routing": (RoutingSettings, routing_app),
            "analytics": (AnalyticsSettings, analytics_app),
        }[service]
        return factory(service_settings(settings_class, **overrides))

    return build


@contextlib.asynccontextmanager
async def from_address(app: FastAPI, peer: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests reach the app from ``peer`` (over ASGI, as the server would hand them over)."""
    transport = httpx.ASGITransport(app=app, client=(peer, 40_000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@contextlib.asynccontextmanager
async def over_http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app behind a real uvicorn on 127.0.0.1 (its lifespan skipped: no Kafka), and a client of it."""

    async def without_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})

    async with serving(without_lifespan) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture
async def close_redis():
    """Close the Redis clients of the apps a test built (their lifespan, which would, does not run)."""
    apps: list[FastAPI] = []
    yield apps.append
    for app in apps:
        await app.state.runtime.redis.aclose()


def assert_too_many(answer: httpx.Response, limit: int) -> None:
    assert answer.status_code == 429, answer.text
    assert int(answer.headers["Retry-After"]) >= 1
    body = answer.json()
    assert f"at most {limit} per minute" in body["detail"] and body["retry_after_s"] >= 1


# --- who is counted ------------------------------------------------------------------------------------------------


async def test_a_client_rotating_x_forwarded_for_directly_still_gets_429(app_of, close_redis):
    app = app_of("intake", rate_limit_per_minute=3, trusted_proxies="10.9.9.9")  # 127.0.0.1 is not a proxy here
    close_redis(app)
    async with over_http(app) as client:
        answers = [
            await client.post("/api/v1/ideas", json={}, headers={"X-Forwarded-For": f"198.51.100.{i}"})
            for i in range(1, 5)
        ]
    assert [a.status_code for a in answers[:3]] == [422, 422, 422]
    assert_too_many(answers[3], 3)


async def test_through_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(app_of, close_redis):
    app = app_of("intake", rate_limit_per_minute=2)  # TRUSTED_PROXIES=127.0.0.1: the local nginx
    close_redis(app)
    async with over_http(app) as client:
        # what a client writes itself stands left of what the proxy appends: rotating it changes nothing
        first = [
            await client.post("/api/v1/ideas", json={}, headers={"X-Forwarded-For": f"10.0.0.{i}, 198.51.100.1"})
            for i in range(3)
        ]
        second = await client.post("/api/v1/ideas", json={}, headers={"X-Forwarded-For": "198.51.100.2"})
    assert [a.status_code for a in first[:2]] == [422, 422]
    assert_too_many(first[2], 2)
    assert second.status_code == 422


async def test_a_signed_in_person_is_counted_as_one_whatever_the_address(app_of, close_redis):
    app = app_of("intake", rate_limit_per_minute=2)
    close_redis(app)
    answers = []
    for peer in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        async with from_address(app, peer) as client:
            answers.append(await client.post("/api/v1/ideas", json={}, headers=bearer(ANNA)))
    assert [a.status_code for a in answers[:2]] == [422, 422]
    assert_too_many(answers[2], 2)
    async with from_address(app, "192.0.2.1") as client:  # the address itself has used nothing of its budget
        assert (await client.post("/api/v1/ideas", json={})).status_code == 422


async def test_a_token_that_does_not_verify_is_counted_by_its_address(app_of, close_redis):
    app = app_of("intake", rate_limit_per_minute=2)
    close_redis(app)
    async with from_address(app, "192.0.2.9") as client:
        answers = [
            await client.post("/api/v1/ideas", json={}, headers={"Authorization": f"Bearer forged-{i}"})
            for i in range(3)
        ]
    assert [a.status_code for a in answers[:2]] == [401, 401]
    assert_too_many(answers[2], 2)


# --- every door ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
async def test_every_service_answers_429_to_writes_over_its_budget(app_of, close_redis, service):
    app = app_of(service, rate_limit_per_minute=2)
    close_redis(app)
    method, path = WRITES[service]
    async with from_address(app, "192.0.2.20") as client:
        answers = [await client.request(method, path, json={}) for _ in range(3)]
        reads = [await client.get("/healthz") for _ in range(3)]  # reads of the cheap kind are not counted
    assert all(a.status_code != 429 for a in answers[:2]), [a.status_code for a in answers]
    assert_too_many(answers[2], 2)
    assert [r.status_code for r in reads] == [200, 200, 200]


async def test_the_expensive_analytics_queries_have_their_own_budget(app_of, close_redis):
    app = app_of("analytics", rate_limit_queries_per_minute=3)
    close_redis(app)
    async with from_address(app, "192.0.2.30") as client:
        answers = [
            await client.get("/api/v1/stats/overview"),
            await client.get("/dashboard"),
            await client.get("/api/v1/ideas", params={"q": "fjärrvärme"}),
            await client.get("/en/dashboard"),
        ]
        cheap = await client.get(f"/api/v1/ideas/{uuid.uuid4()}")  # one idea's timeline is not counted
    assert all(a.status_code != 429 for a in answers[:3]), [a.status_code for a in answers]
    assert_too_many(answers[3], 3)
    assert cheap.status_code == 404


# --- bodies --------------------------------------------------------------------------------------------------------


async def chunks(total: int, size: int = 400) -> AsyncIterator[bytes]:
    """A body sent without a length (Transfer-Encoding: chunked)."""
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


@pytest.mark.parametrize("service", sorted(BODY_DOORS))
async def test_a_chunked_upload_over_the_limit_is_413_and_a_small_body_passes(app_of, close_redis, service):
    app = app_of(service, max_body_bytes=1000, rate_limit_per_minute=1000)
    close_redis(app)
    method, path = BODY_DOORS[service]
    async with over_http(app) as client:
        large = await client.request(method, path, content=chunks(5000), headers={"content-type": "application/json"})
        small = await client.request(method, path, json={})
    assert large.status_code == 413, large.text
    assert large.json()["errors"][0]["field"] == "(body)" and "at most 1000 bytes" in large.json()["detail"]
    assert small.status_code in (401, 422)  # the service's own answer: the body reached it


@pytest.mark.parametrize("service", SERVICES)
async def test_every_service_refuses_a_body_announced_over_its_limit(app_of, close_redis, service):
    app = app_of(service, max_body_bytes=1000, rate_limit_per_minute=1000)
    close_redis(app)
    method, path = WRITES[service]
    async with over_http(app) as client:
        answer = await client.request(method, path, content=b"x" * 1001, headers={"content-type": "application/json"})
    assert answer.status_code == 413 and "at most 1000 bytes" in answer.json()["detail"]


# --- bounded requests ----------------------------------------------------------------------------------------------


def unbounded(schema: dict[str, Any], document: dict[str, Any], where: str) -> list[str]:
    """Where ``schema`` lets a request grow without bound: a list with no maxItems, an object open to any key, a
    string with no maxLength, pattern, enum or format."""
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    found = []
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            found += unbounded(option, document, where)
    kind = schema.get("type")
    if kind == "array":
        if "maxItems" not in schema:
            found.append(f"{where}: a list without maxItems")
        found += unbounded(schema.get("items", {}), document, f"{where}[]")
    elif kind == "object":
        if schema.get("additionalProperties", True) is not False:
            found.append(f"{where}: an object open to any key")
        for name, field in schema.get("properties", {}).items():
            found += unbounded(field, document, f"{where}.{name}")
    elif kind == "string" and not {"maxLength", "pattern", "enum", "const", "format"} & schema.keys():
        found.append(f"{where}: a string without maxLength")
    return found


@pytest.mark.parametrize("service", ("intake", "routing", "analytics"))  # notifications': another test's
def test_every_request_body_and_parameter_is_bounded(app_of, service):
    document = app_of(service).openapi()
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                found += unbounded(parameter["schema"], document, f"{method} {path} {parameter['name']}")
            for media in operation.get("requestBody", {}).get("content", {}).values():
                found += unbounded(media["schema"], document, f"{method} {path} body")
    assert not found, found
