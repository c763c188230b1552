"""Analytics' pages in a real browser (headless Chromium), served over HTTP by uvicorn in-process, against the
real Kafka and Redis and the real Keycloak: the public status page (and its forms once signed in), the dashboard's
charts (screenshot saved), the officer inbox behind sign-in, and the inbox's action changing an idea's state end
to end through intake's API on the same site, with the session cookie (no token to paste).

People sign in through Keycloak's own login page; the site is served on a port the realm lets the sign-in come
back to (deploy/keycloak/realm.py WEB_ORIGINS). Intake and analytics are one site, as behind the proxy: a small
path dispatcher in front of both."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI, Request
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
)
from shared.identity import SESSION_COOKIE
from tests.integration.test_analytics_projections import (
    I1,
    I2,
    I4,
    I5,
    TITLES,
    history,
    people_keyring,
    projected,
    publish,
)
from tests.support.http_server import serving
from tests.support.identity import ERIK, PASSWORD, PER
from tests.support.kafka import eventually, raw_producer

pytestmark = pytest.mark.kafka

STATUS_ROUTE = "/api/v1/ideas/{idea_id}/status"
# Where the realm lets a sign-in come back to (deploy/keycloak/realm.py WEB_ORIGINS), analytics' own port first.
SIGN_IN_PORTS = (8003, 8080, 18080)
# What intake serves on the one site (the rest is analytics'), as the proxy routes it.
INTAKE_PATHS = re.compile(
    r"^/api/v1/ideas/[^/]+/(status|comments|support|follow)$"
    r"|^/(en/)?ideas/[^/]+/(support|comments|follow|edit|withdraw|assign|merge)$"
)


def site_socket() -> socket.socket:
    """A socket on a port the identity provider may send people back to; skip when all of them are taken."""
    for port in SIGN_IN_PORTS:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        return sock
    pytest.skip(f"none of the sign-in ports {SIGN_IN_PORTS} is free (the realm allows only those)")


class OneSite:
    """Analytics and intake as one site, the way the proxy puts them: intake's writes by path, the rest to
    analytics. Both apps' lifespans run (broker, Redis)."""

    def __init__(self, analytics: FastAPI, intake: FastAPI) -> None:
        self.analytics, self.intake = analytics, intake

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        target = self.intake if scope["type"] == "http" and INTAKE_PATHS.match(scope["path"]) else self.analytics
        await target(scope, receive, send)

    async def lifespan(self, receive, send) -> None:
        await receive()  # lifespan.startup
        async with contextlib.AsyncExitStack() as stack:
            try:
                for app in (self.analytics, self.intake):
                    await stack.enter_async_context(app.router.lifespan_context(app))
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
        await send({"type": "lifespan.shutdown.complete"})


async def sign_in(page, base: str, username: str, next_path: str) -> None:
    """Sign in at Keycloak's login page, the way a person does, and come back to ``next_path``."""
    if not page.url.startswith("http://127.0.0.1:8180/"):
        await page.goto(f"{base}/auth/login?next={quote(next_path)}")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#kc-login")
    await page.wait_for_url(f"{base}{next_path}", timeout=30_000)


@contextlib.asynccontextmanager
async def served_history(service_settings, topics, kafka_settings) -> AsyncIterator[str]:
    """Analytics over HTTP (on a sign-in port) with the scripted history of the integration tests projected."""
    settings = service_settings(AnalyticsSettings)
    app = analytics_app(settings)
    async with (
        serving(app, sock=site_socket()) as base,
        httpx.AsyncClient(base_url=base) as api,
        people_keyring(settings) as keyring,
    ):
        await eventually(app.state.runtime.kafka_connected.is_set, timeout=30)
        await publish(kafka_settings, await history(topics, keyring))
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
        assert kinds == ["submitted", "routed", *["status-changed"] * 2, "merged-in", *["status-changed"] * 4]
        content = (await page.content()).lower()
        for personal in ("anna", "svensson", "kiruna.se", "lisa.berg", "mia@", "erik.lindberg", "<script>alert"):
            assert personal not in content, personal
        assert await page.locator("#idea-submitter").inner_text() == "Inskickad av en medarbetare (Kiruna kommun)"

        # idea text is shown as text, never as markup
        await page.goto(f"{base}/ideas/{I5}")
        assert await page.locator("#idea-title").inner_text() == TITLES[I5]
        assert await page.locator("#idea-title b").count() == 0
        assert await page.locator("#idea-submitter").inner_text() == "Inskickad av anonym"

        await page.goto(f"{base}/en/ideas/{I2}")
        assert await page.locator("html").get_attribute("lang") == "en"
        assert await page.locator("#idea-state").inner_text() == "Declined"
        assert await page.locator("#decline-reason").inner_text() == "Finns redan i laddplanen för 2026"
        await page.click("text=På svenska")
        assert page.url == f"{base}/ideas/{I2}" and await page.locator("#idea-state").inner_text() == "Avböjd"

        answer = await page.goto(f"{base}/ideas/{uuid.uuid4()}?lang=en")
        assert answer.status == 404 and "Idea not found" in await page.locator("h1").inner_text()

        # the site header on top; to support or comment, sign in first (and come back here)
        await page.goto(f"{base}/ideas/{I1}")
        assert await page.locator("body > header.site-header").count() == 1
        assert await page.locator("#support-form, #comment-form").count() == 0
        link = page.locator("#sign-in-to-engage")
        assert await link.inner_text() == "Logga in för att stödja, följa eller kommentera"
        await link.click()
        await sign_in(page, base, PER, f"/ideas/{I1}")
        assert await page.locator("#signed-in-name").inner_text() == "Per Niemi"
        assert await page.locator("#support-form").get_attribute("action") == f"/ideas/{I1}/support"
        assert await page.locator("#comment-form").get_attribute("action") == f"/ideas/{I1}/comments"
        assert await page.locator("#comment-form textarea[name=text]").is_visible()
        content = await page.content()
        assert "erik.lindberg" not in content and await page.locator("#comments .comment").count() == 1
        assert await page.locator("#idea-comments").inner_text() == "1"
        assert page.js_errors == []


async def test_the_dashboard_renders_its_charts_with_data_tables(
    page, service_settings, topics, kafka_settings, artifacts
):
    async with served_history(service_settings, topics, kafka_settings) as base:
        await page.goto(f"{base}/dashboard")
        assert await page.locator("body > header.site-header #sign-in").count() == 1
        figures = ["fig-funnel", "fig-time", "fig-response", "fig-participation", "fig-by-organisation", "fig-by-area"]
        for figure in figures:
            chart = page.locator(f"#{figure} svg.chart")
            assert await chart.count() == 1, figure
            assert await chart.get_attribute("role") == "img"
            box = await chart.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 30, figure
            assert await page.locator(f"#{figure} details table").count() == 1, figure
        funnel_values = await page.locator("#fig-funnel svg text.value").all_text_contents()
        assert funnel_values == ["5", "5", "3", "1", "1", "1", "1", "1", "1", "1", "0"]
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
        await page.goto(f"{base}/inbox/tekniska-verken?page_size=2")  # not signed in: off to the sign-in page
        assert page.url.startswith("http://127.0.0.1:8180/realms/kiruna/")
        await sign_in(page, base, ERIK, "/inbox/tekniska-verken?page_size=2")
        rows = await page.locator("#inbox tbody tr").evaluate_all("rows => rows.map(r => r.dataset.ideaId)")
        assert rows[0] == I4 and len(rows) == 2
        assert await page.locator(f"#idea-{I4} td.submitter").inner_text() == "Dag Dahl"  # the officer sees who
        assert await page.locator("form.action").first.is_visible()  # JavaScript is on: the actions are offered
        assert await page.locator("#token, #token-box").count() == 0  # and no token to paste
        await page.click("a[rel=next]")
        await page.wait_for_url("**page=2**")  # the click navigates: read the rows of the new page
        assert await page.locator("#inbox tbody tr").evaluate_all("rows => rows.map(r => r.dataset.ideaId)") == [I1]
        await page.goto(f"{base}/inbox/tekniska-verken")
        await page.select_option("select[name=state]", "acknowledged")
        await page.click("form.filters button[type=submit]")
        await page.wait_for_url("**state=acknowledged**")
        assert await page.locator("#inbox tbody tr").evaluate_all("rows => rows.map(r => r.dataset.ideaId)") == [I4]
        row = page.locator(f"#idea-{I4}")
        assert "försenad" in (await row.inner_text()).lower()  # waiting past the assessment target
        options = await row.locator("select[name=to_state] option").evaluate_all("os => os.map(o => o.value)")
        assert options == ["in-assessment", "declined", "merged"]
        answer = await page.goto(f"{base}/inbox/no-such-organisation")
        assert answer.status == 404

        # another organisation's inbox: refused, in the page's language, under the site header
        answer = await page.goto(f"{base}/en/inbox/kiruna-kommun")
        assert answer.status == 403 and await page.locator("h1").inner_text() == "Not allowed"
        assert "Kiruna" in await page.locator("#forbidden-reason").inner_text()
        assert await page.locator("#signed-in-name").inner_text() == "Erik Lindberg"
        assert page.js_errors == []


async def test_an_officer_acknowledges_an_idea_from_the_inbox_end_to_end(
    page, service_settings, topics, kafka_settings
):
    from services.intake.app import create_app as intake_app
    from services.intake.settings import IntakeSettings

    intake = intake_app(service_settings(IntakeSettings))
    settings = service_settings(AnalyticsSettings)
    analytics = analytics_app(settings)  # intake_url "": the same site
    idea_id = str(uuid.uuid4())
    async with people_keyring(settings) as keyring:
        kim, _ = await keyring.person_ref("kim@kiruna.se", "Kim Kallio", organisation="kiruna-kommun")
    submitted = IdeaSubmitted(
        idea_id=idea_id,
        title="Värmeåtervinning i simhallen",
        description="Ta vara på värmen i duschvattnet.",
        submitter=kim,
    )
    routed = IdeaRouted(
        idea_id=idea_id,
        title=submitted.title,
        organisations=(RoutingTarget(organisation="tekniska-verken", unit="energi"),),
        reason="'värme' -> klimat-och-energi",
    )
    async with (
        serving(OneSite(analytics, intake), sock=site_socket()) as base,
        raw_producer(kafka_settings) as producer,
    ):
        await eventually(intake.state.runtime.kafka_connected.is_set, timeout=30)
        await eventually(analytics.state.runtime.kafka_connected.is_set, timeout=30)
        for topic, payload in ((topics.submitted, submitted), (topics.routed, routed)):
            envelope = Envelope.wrap(payload, source="/tests")
            await producer.send_and_wait(topic, envelope.to_bytes(), key=idea_id.encode())
        await sign_in(page, base, ERIK, "/inbox/tekniska-verken")

        async def listed():
            await page.goto(f"{base}/inbox/tekniska-verken")
            return await page.locator(f"#idea-{idea_id}").count()

        await eventually(listed, timeout=30, interval=0.5)
        row = page.locator(f"#idea-{idea_id}")
        await row.locator("select[name=to_state]").select_option("acknowledged")
        await row.locator("form.action button[type=submit]").click()
        await row.locator(".state[data-state=acknowledged]").wait_for(timeout=30_000)
        assert await row.locator(".state").inner_text() == "Mottagen"
        assert "Mottagen" in await row.locator(".result").inner_text()

        # a decline needs a reason: intake refuses without one and the page says why
        await row.locator("select[name=to_state]").select_option("declined")
        await row.locator("form.action button[type=submit]").click()
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
        assert await page.locator("#timeline .actor").first.is_visible()  # Erik acts on the idea: the officer view
        assert ERIK in await page.locator("#timeline").inner_text()
        assert await page.locator("#idea-submitter").inner_text() == "Inskickad av Kim Kallio"
        await page.context.clear_cookies()  # signed out: the public page names no officer and no submitter
        await page.goto(f"{base}/ideas/{idea_id}")
        assert ERIK not in await page.content() and await page.locator("#timeline .actor").count() == 0
        assert "Kim" not in await page.content()
        assert page.js_errors == []


def fake_intake(producer, topics, *, calls: list) -> FastAPI:
    """Intake's status endpoint as the inbox expects it on the same site: the session cookie, no bearer token;
    refuses a decline without a reason, and publishes the status change to Kafka."""
    app = FastAPI()

    @app.post(STATUS_ROUTE, status_code=202)
    async def change_status(idea_id: str, request: Request):
        body = await request.json()
        calls.append(
            {
                "idea_id": idea_id,
                "authorization": request.headers.get("authorization"),
                "session": SESSION_COOKIE in request.cookies,
                "origin": request.headers.get("origin"),
                **body,
            }
        )
        if SESSION_COOKIE not in request.cookies:
            return JSONResponse({"detail": "Not authenticated: sign in"}, status_code=401)
        if body["to_state"] == "declined" and not body.get("reason"):
            return JSONResponse({"detail": "Invalid request: reason: required when moving an idea to declined"}, 422)
        change = IdeaStatusChanged(
            idea_id=idea_id,
            to_state=IdeaState(body["to_state"]),
            reason=body.get("reason"),
            changed_by=ERIK,
            organisation="tekniska-verken",
        )
        envelope = Envelope.wrap(change, source="/tests/fake-intake")
        await producer.send_and_wait(topics.status_changed, envelope.to_bytes(), key=idea_id.encode())
        return {"idea_id": idea_id, "event_id": envelope.id}

    return app


async def test_the_inbox_actions_call_the_same_site_with_the_session_cookie(
    page, service_settings, topics, kafka_settings
):
    analytics = analytics_app(service_settings(AnalyticsSettings))
    calls: list[dict] = []
    async with raw_producer(kafka_settings) as producer:
        site = OneSite(analytics, fake_intake(producer, topics, calls=calls))
        async with serving(site, sock=site_socket()) as base:
            await eventually(analytics.state.runtime.kafka_connected.is_set, timeout=30)
            async with people_keyring(analytics.state.runtime.settings) as keyring:
                await publish(kafka_settings, await history(topics, keyring))
            async with httpx.AsyncClient(base_url=base) as api:
                await projected(api)  # the page is loaded once: the history must be projected first
            await sign_in(page, base, ERIK, "/inbox/tekniska-verken?state=acknowledged")
            row = page.locator(f"#idea-{I4}")
            await row.wait_for()

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
                "authorization": None,  # no token: the session cookie, on the site's own origin
                "session": True,
                "origin": base,
                "to_state": "declined",
                "reason": "Solceller på taket ingår redan i energiplanen",
                "merged_into": None,
            }
            # the public page now tells the submitter why
            await page.goto(f"{base}/ideas/{I4}")
            assert await page.locator("#decline-reason").inner_text() == "Solceller på taket ingår redan i energiplanen"

            # the session ends while the inbox is open: the page says to sign in again
            await page.goto(f"{base}/inbox/tekniska-verken?state=spread")
            row = page.locator(f"#idea-{I1}")
            await page.context.clear_cookies()
            await row.locator("form.action button[type=submit]").click()
            await page.wait_for_function(
                "el => el.textContent.includes('inloggad')", arg=await row.locator(".result").element_handle()
            )
            assert calls[-1]["session"] is False
            assert page.js_errors == []
