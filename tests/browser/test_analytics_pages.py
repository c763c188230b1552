"""Analytics' pages in a real browser (headless Chromium), served over HTTP by uvicorn in-process, against the
real Kafka and Redis: the public status page, the dashboard's charts (screenshot saved), and the officer inbox's
action changing an idea's state end to end through intake's API."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from services.analytics.app import create_app as analytics_app
from services.analytics.settings import AnalyticsSettings
from shared.events import (
    Envelope,
    IdeaRouted,
    IdeaState,
    IdeaStatusChanged,
    IdeaSubmitted,
    RoutingTarget,
    Submitter,
)
from tests.integration.test_analytics_projections import I1, I2, I4, I5, TITLES, history, projected, publish
from tests.support.http_server import bind, serving, url_of
from tests.support.kafka import eventually, raw_producer

pytestmark = pytest.mark.kafka

STATUS_ROUTE = "/api/v1/ideas/{idea_id}/status"


@contextlib.asynccontextmanager
async def served_history(service_settings, topics, kafka_settings) -> AsyncIterator[str]:
    """Analytics over HTTP with the scripted history of the integration tests projected."""
    app = analytics_app(service_settings(AnalyticsSettings))
    async with serving(app) as base, httpx.AsyncClient(base_url=base) as api:
        await eventually(app.state.runtime.kafka_connected.is_set, timeout=30)
        await publish(kafka_settings, history(topics))
        await projected(api)
        yield base


async def test_the_public_status_page_tells_the_story_without_personal_data(
    page, service_settings, topics, kafka_settings
):
    async with served_history(service_settings, topics, kafka_settings) as base:
        await page.goto(f"{base}/ideas/{I1}")
        assert await page.locator("html").get_attribute("lang") == "sv"
        assert await page.locator("#idea-title").inner_text() == TITLES[I1]
        assert await page.locator("#idea-state").inner_text() == "Spridd"
        assert "Tekniska Verken i Kiruna" in await page.locator("#idea-organisations").inner_text()
        kinds = await page.locator("#timeline tbody tr").evaluate_all("rows => rows.map(r => r.dataset.kind)")
        assert kinds == ["submitted", "routed", *["status-changed"] * 6]
        content = (await page.content()).lower()
        for personal in ("anna", "svensson", "kiruna.se", "lisa.berg", "mia@", "erik.lindberg", "<script>alert"):
            assert personal not in content, personal

        # idea text is shown as text, never as markup
        await page.goto(f"{base}/ideas/{I5}")
        assert await page.locator("#idea-title").inner_text() == TITLES[I5]
        assert await page.locator("#idea-title b").count() == 0

        await page.goto(f"{base}/en/ideas/{I2}")
        assert await page.locator("html").get_attribute("lang") == "en"
        assert await page.locator("#idea-state").inner_text() == "Declined"
        assert await page.locator("#decline-reason").inner_text() == "Finns redan i laddplanen för 2026"
        await page.click("text=På svenska")
        assert page.url == f"{base}/ideas/{I2}" and await page.locator("#idea-state").inner_text() == "Avböjd"

        answer = await page.goto(f"{base}/ideas/{uuid.uuid4()}?lang=en")
        assert answer.status == 404 and "Idea not found" in await page.locator("h1").inner_text()
        assert page.js_errors == []


async def test_the_dashboard_renders_its_charts_with_data_tables(
    page, service_settings, topics, kafka_settings, artifacts
):
    async with served_history(service_settings, topics, kafka_settings) as base:
        await page.goto(f"{base}/dashboard")
        figures = ["fig-funnel", "fig-time", "fig-response", "fig-participation", "fig-by-organisation", "fig-by-area"]
        for figure in figures:
            chart = page.locator(f"#{figure} svg.chart")
            assert await chart.count() == 1, figure
            assert await chart.get_attribute("role") == "img"
            box = await chart.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 30, figure
            assert await page.locator(f"#{figure} details table").count() == 1, figure
        funnel_values = await page.locator("#fig-funnel svg text.value").all_text_contents()
        assert funnel_values == ["5", "5", "3", "1", "1", "1", "1", "1", "1", "1"]
        assert await page.locator("#fig-by-organisation svg pattern").count() >= 3  # not colour alone
        await page.locator("#fig-funnel summary").click()
        assert await page.locator("#fig-funnel details table").is_visible()
        assert await page.locator("#kf-ideas").inner_text() == "5"
        missed = await page.locator("#missed tbody tr").count()
        assert missed >= 3  # I4 late; I4 and I5 overdue on later targets
        await page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
        assert (artifacts / "dashboard.png").stat().st_size > 10_000

        await page.goto(f"{base}/en/dashboard?organisation=tekniska-verken&from=2025-03-01&to=2025-03-31")
        assert await page.locator("h1").inner_text() == "The change process in figures"
        assert await page.locator("#kf-ideas").inner_text() == "2"  # I1 and I3
        answer = await page.goto(f"{base}/dashboard?organisation=nowhere")
        assert answer.status == 422 and "organisation" in json.loads(await answer.text())["detail"]
        assert page.js_errors == []


async def test_the_inbox_lists_filters_and_pages_an_organisations_ideas(page, service_settings, topics, kafka_settings):
    async with served_history(service_settings, topics, kafka_settings) as base:
        await page.goto(f"{base}/inbox/tekniska-verken?page_size=2")
        rows = await page.locator("#inbox tbody tr").evaluate_all("rows => rows.map(r => r.dataset.ideaId)")
        assert rows[0] == I4 and len(rows) == 2
        assert await page.locator("#token-box").is_visible()  # JavaScript is on: the actions are offered
        await page.click("a[rel=next]")
        assert await page.locator("#inbox tbody tr").evaluate_all("rows => rows.map(r => r.dataset.ideaId)") == [I1]
        await page.goto(f"{base}/inbox/tekniska-verken")
        await page.select_option("select[name=state]", "acknowledged")
        await page.click("form.filters button[type=submit]")
        assert await page.locator("#inbox tbody tr").evaluate_all("rows => rows.map(r => r.dataset.ideaId)") == [I4]
        row = page.locator(f"#idea-{I4}")
        assert "försenad" in (await row.inner_text()).lower()  # waiting past the assessment target
        options = await row.locator("select[name=to_state] option").evaluate_all("os => os.map(o => o.value)")
        assert options == ["in-assessment", "declined", "merged"]
        answer = await page.goto(f"{base}/inbox/no-such-organisation")
        assert answer.status == 404
        assert page.js_errors == []


async def test_an_officer_acknowledges_an_idea_from_the_inbox_end_to_end(
    page, service_settings, topics, kafka_settings
):
    from services.intake.app import create_app as intake_app
    from services.intake.settings import IntakeSettings

    intake_socket, analytics_socket = bind(), bind()
    intake = intake_app(service_settings(IntakeSettings, cors_origins=[url_of(analytics_socket)]))
    from services.intake.auth import Role, mint_token

    token = mint_token(service_settings(IntakeSettings), sub="erik.lindberg", org="tekniska-verken", role=Role.OFFICER)
    analytics = analytics_app(service_settings(AnalyticsSettings, intake_url=url_of(intake_socket)))
    idea_id = str(uuid.uuid4())
    submitted = IdeaSubmitted(
        idea_id=idea_id,
        title="Värmeåtervinning i simhallen",
        description="Ta vara på värmen i duschvattnet.",
        submitter=Submitter(name="Kim", email="kim@kiruna.se", organisation="kiruna-kommun"),
    )
    routed = IdeaRouted(
        idea_id=idea_id,
        title=submitted.title,
        organisations=(RoutingTarget(organisation="tekniska-verken", unit="energi"),),
        reason="'värme' -> klimat-och-energi",
    )
    async with (
        serving(intake, sock=intake_socket),
        serving(analytics, sock=analytics_socket) as base,
        raw_producer(kafka_settings) as producer,
    ):
        await eventually(intake.state.runtime.kafka_connected.is_set, timeout=30)
        await eventually(analytics.state.runtime.kafka_connected.is_set, timeout=30)
        for topic, payload in ((topics.submitted, submitted), (topics.routed, routed)):
            envelope = Envelope.wrap(payload, source="/tests")
            await producer.send_and_wait(topic, envelope.to_bytes(), key=idea_id.encode())

        async def listed():
            await page.goto(f"{base}/inbox/tekniska-verken")
            return await page.locator(f"#idea-{idea_id}").count()

        await eventually(listed, timeout=30, interval=0.5)
        await page.fill("#token", token)
        await page.click("#token-save")
        assert await page.evaluate("sessionStorage.getItem('kiruna.officerToken')") == token
        row = page.locator(f"#idea-{idea_id}")
        await row.locator("select[name=to_state]").select_option("acknowledged")
        await row.locator("form.action button[type=submit]").click()
        await row.locator(".state[data-state=acknowledged]").wait_for(timeout=30_000)
        assert await row.locator(".state").inner_text() == "Mottagen"
        assert "Mottagen" in await row.locator(".result").inner_text()

        # a decline needs a reason: intake refuses without one and the page says why
        await row.locator("select[name=to_state]").select_option("declined")
        await row.locator("form.action button[type=submit]").click()
        await eventually(lambda: row.locator(".result").inner_text(), timeout=10)
        await page.wait_for_function(
            "el => /422|reason/i.test(el.textContent)",
            arg=await row.locator(".result").element_handle(),
            timeout=10_000,
        )
        await row.locator("textarea[name=reason]").fill("Ingår redan i energiplanen")
        await row.locator("form.action button[type=submit]").click()
        await row.locator(".state[data-state=declined]").wait_for(timeout=30_000)

        await page.goto(f"{base}/ideas/{idea_id}")
        assert await page.locator("#idea-state").inner_text() == "Avböjd"
        assert await page.locator("#decline-reason").inner_text() == "Ingår redan i energiplanen"
        assert page.js_errors == []


def fake_intake(producer, topics, *, origin: str, token: str, calls: list):
    """Intake's status endpoint as the inbox expects it (the real one is tested above when it exists): checks the
    bearer token, refuses a decline without a reason, and publishes the status change to Kafka."""
    app = FastAPI()
    app.add_middleware(
        CORSMiddleware, allow_origins=[origin], allow_methods=["POST"], allow_headers=["authorization", "content-type"]
    )

    @app.post(STATUS_ROUTE, status_code=202)
    async def change_status(idea_id: str, request: Request):
        body = await request.json()
        calls.append({"idea_id": idea_id, "authorization": request.headers.get("authorization"), **body})
        if request.headers.get("authorization") != f"Bearer {token}":
            return JSONResponse({"detail": "Not authenticated"}, status_code=401)
        if body["to_state"] == "declined" and not body.get("reason"):
            return JSONResponse({"detail": "Invalid request: reason: required when moving an idea to declined"}, 422)
        change = IdeaStatusChanged(
            idea_id=idea_id,
            to_state=IdeaState(body["to_state"]),
            reason=body.get("reason"),
            changed_by="erik.lindberg",
            organisation="tekniska-verken",
        )
        envelope = Envelope.wrap(change, source="/tests/fake-intake")
        await producer.send_and_wait(topics.status_changed, envelope.to_bytes(), key=idea_id.encode())
        return {"idea_id": idea_id, "event_id": envelope.id}

    return app


async def test_the_inbox_actions_call_intake_with_the_officers_token(page, service_settings, topics, kafka_settings):
    intake_socket, analytics_socket = bind(), bind()
    analytics = analytics_app(service_settings(AnalyticsSettings, intake_url=url_of(intake_socket)))
    calls: list[dict] = []
    async with raw_producer(kafka_settings) as producer:
        intake = fake_intake(producer, topics, origin=url_of(analytics_socket), token="officer-token", calls=calls)
        async with serving(intake, sock=intake_socket), serving(analytics, sock=analytics_socket) as base:
            await eventually(analytics.state.runtime.kafka_connected.is_set, timeout=30)
            await publish(kafka_settings, history(topics))
            async with httpx.AsyncClient(base_url=base) as api:
                await projected(api)  # the page is loaded once: the history must be projected first
            await page.goto(f"{base}/inbox/tekniska-verken?state=acknowledged")
            row = page.locator(f"#idea-{I4}")
            await row.wait_for()

            # no token yet: the page asks for it and calls nothing
            await row.locator("form.action button[type=submit]").click()
            assert "token" in (await row.locator(".result").inner_text()).lower() and calls == []

            await page.fill("#token", "officer-token")
            await page.click("#token-save")
            await row.locator("select[name=to_state]").select_option("declined")
            await row.locator("form.action button[type=submit]").click()
            await page.wait_for_function(
                "el => el.textContent.includes('422')", arg=await row.locator(".result").element_handle()
            )
            assert "reason" in await row.locator(".result").inner_text()

            await row.locator("textarea[name=reason]").fill("Solceller på taket ingår redan i energiplanen")
            await row.locator("form.action button[type=submit]").click()
            await row.locator(".state[data-state=declined]").wait_for(timeout=30_000)
            assert await row.locator(".state").inner_text() == "Avböjd"
            assert await row.locator("select[name=to_state] option").count() == 0  # closed: nothing more to do
            assert calls[-1] == {
                "idea_id": I4,
                "authorization": "Bearer officer-token",
                "to_state": "declined",
                "reason": "Solceller på taket ingår redan i energiplanen",
                "merged_into": None,
            }
            # the token stays in this tab only, and the public page now tells the submitter why
            assert await page.evaluate("sessionStorage.getItem('kiruna.officerToken')") == "officer-token"
            await page.goto(f"{base}/ideas/{I4}")
            assert await page.locator("#decline-reason").inner_text() == "Solceller på taket ingår redan i energiplanen"
            assert page.js_errors == []
