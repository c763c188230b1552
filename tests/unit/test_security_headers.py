"""Every service answers with the security headers (shared/security_headers.py); a page's own fuller policy stays."""

from __future__ import annotations

import base64

import httpx
import pytest
from pydantic import SecretStr

from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.oidc import OidcSettings
from tests.fakes.intake import FakeIntakeStore


async def answer(app, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        return await client.get(path)


@pytest.mark.parametrize("environment", ["development", "production"])
async def test_every_answer_carries_the_security_headers(environment):
    settings = RoutingSettings(
        environment=environment,
        session_secret=SecretStr("s" * 40),
        oidc=OidcSettings(client_secret=SecretStr("c" * 40)),
        people_kek=SecretStr(base64.b64encode(b"k" * 32).decode()),  # production refuses the development secrets
        pseudonym_pepper=SecretStr("p" * 32),
    )
    health = await answer(routing_app(settings), "/healthz")
    assert health.headers["x-content-type-options"] == "nosniff"
    assert health.headers["referrer-policy"] == "same-origin"
    assert health.headers["x-frame-options"] == "DENY"
    assert health.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert ("strict-transport-security" in health.headers) is (environment == "production")


async def test_a_page_keeps_its_own_policy():
    page = await answer(intake_app(IntakeSettings(smtp_enabled=False), store=FakeIntakeStore()), "/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers.get_list("content-security-policy") == [page.headers["content-security-policy"]]
