"""The pages' Content-Security-Policy (shared/csp.py) in a real headless Chromium, on the whole site as people use
it: the four services behind the nginx proxy, sign-in on Keycloak's own page, the real Kafka and Redis.

Every page of every service (the form, a status page, the dashboard, an officer's inbox, "my ideas", the feed, the
preferences, "my data" and each service's /docs) answers with the policy, which allows no inline script or style,
loads with no violation of it, and its scripts and stylesheets work: the inbox's actions are offered and change a
state, the dashboard's charts are drawn, the feed's live script connects, Swagger UI renders from the site's own
files, and no request leaves 127.0.0.1. Signing out (a form whose post ends at the identity provider) still works."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from shared.csp import page_policy
from tests.support.identity import PER, bearer
from tests.support.kafka import probe
from tests.support.site import shows, sign_in, the_site

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted(ROOT.glob("services/*/templates/**/*.html"))
SERVICES = ("intake", "routing", "notifications", "analytics")
REQUIRED = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "object-src 'none'",
)
# Inline code the policy would block: <style>, style="", <script> without src (a JSON data block is no script),
# and event-handler attributes.
INLINE = re.compile(
    r"<style|\sstyle\s*=|<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>|\son[a-z]+\s*=", re.I
)
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(
  {directive: e.violatedDirective, blocked: e.blockedURI, document: e.documentURI, sample: e.sample}));
"""


@pytest.mark.parametrize("template", TEMPLATES, ids=[str(t.relative_to(ROOT)) for t in TEMPLATES])
def test_no_template_carries_inline_script_or_style(template: Path) -> None:
    found = INLINE.findall(template.read_text())
    assert not found, f"{template.name}: {found} (move it to the service's static files: shared/csp.py)"


def test_the_policy_adds_only_the_origins_of_the_provider_and_of_a_split_api() -> None:
    policy = page_policy(sign_out_to="https://login.example.org/tenant/v2.0", connect_to="https://intake.example.org/x")
    assert "form-action 'self' https://login.example.org;" in policy
    assert "connect-src 'self' https://intake.example.org;" in policy
    assert page_policy(connect_to="") == page_policy() and "unsafe" not in page_policy()


class Watch:
    """What the browser saw: policy violations (events and console), requests, and each HTML answer's policy."""

    def __init__(self, site: str) -> None:
        self.site = site
        self.console: list[str] = []
        self.requests: list[str] = []
        self.pages: dict[str, str | None] = {}

    def attach(self, page) -> None:
        page.on("console", self._console)
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("response", self._response)

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text:
            self.console.append(message.text)

    def _response(self, response) -> None:
        if response.url.startswith(self.site) and "text/html" in response.headers.get("content-type", ""):
            self.pages[response.url] = response.headers.get("content-security-policy")

    async def violations(self, page) -> list[dict]:
        return [v for v in await page.evaluate("window.__violations || []") if v["document"].startswith(self.site)]


async def visit(page, watch: Watch, url: str) -> None:
    answer = await page.goto(url)
    assert answer is not None and answer.ok, f"{url}: {answer and answer.status}"
    await page.wait_for_load_state("load")
    assert await watch.violations(page) == [], url
    assert watch.console == [], url


async def test_every_page_keeps_to_the_policy_and_still_works(
    browser, service_settings, topics, kafka_settings, tmp_path, artifacts
):
    async with the_site(service_settings, tmp_path) as site, probe(kafka_settings, topics.routed) as routed:
        async with httpx.AsyncClient(base_url=site, timeout=30) as api:
            answer = await api.post(
                "/api/v1/ideas",
                headers=bearer(PER),
                json={"title": "Laddplatser vid hyreshusen", "description": "Hyresgästerna vill ladda elbilar."},
            )
            assert answer.status_code == 202, answer.text
            idea = answer.json()["idea_id"]
        await routed.wait_for(lambda records: any(r.key == idea.encode() for r in records))

        context = await browser.new_context(viewport={"width": 1400, "height": 1000}, locale="sv-SE")
        await context.add_init_script(RECORD_VIOLATIONS)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        watch = Watch(site)
        watch.attach(page)
        try:
            # --- anyone: the form, a status page, the dashboard, each service's /docs -------------------------
            for path in ("/", "/en"):
                await visit(page, watch, site + path)
                assert await page.is_visible("#title")
                header = await page.eval_on_selector(".site-header", "e => getComputedStyle(e).backgroundColor")
                assert header == "rgb(23, 54, 93)", "the header's stylesheet (/static/site.css) applies"
                button = await page.eval_on_selector("main button", "e => getComputedStyle(e).backgroundColor")
                assert button == "rgb(0, 80, 179)", "the form's stylesheet (/static/intake/form.css) applies"
            await page.screenshot(path=str(artifacts / "csp-form.png"))

            await shows(page, f"{site}/ideas/{idea}", "Laddplatser vid hyreshusen")
            await visit(page, watch, f"{site}/en/ideas/{idea}")
            state = await page.eval_on_selector("#idea-state", "e => getComputedStyle(e).borderTopStyle")
            assert state == "solid", "analytics' stylesheet (/static/analytics/analytics.css) applies"

            for path in ("/dashboard", "/en/dashboard"):
                await visit(page, watch, site + path)
                charts = page.locator("figure svg")
                assert await charts.count() >= 6
                for index in range(await charts.count()):
                    box = await charts.nth(index).bounding_box()
                    assert box is not None and box["width"] > 100 and box["height"] > 20, f"chart {index} drawn"
            await page.screenshot(path=str(artifacts / "csp-dashboard.png"), full_page=True)

            for service in SERVICES:
                before = len(watch.requests)
                await visit(page, watch, f"{site}/services/{service}/docs")
                await page.wait_for_selector(".swagger-ui .info .title")
                await page.click(".swagger-ui .opblock .opblock-summary")  # an operation opens
                await page.wait_for_selector(".swagger-ui .opblock .opblock-body")
                assert await watch.violations(page) == [] and watch.console == [], service
                assert service in (await page.text_content(".swagger-ui .info .title") or "")
                away = [url for url in watch.requests[before:] if urlsplit(url).hostname != "127.0.0.1"]
                assert away == [], f"/docs of {service} asked elsewhere: {away}"
            await page.screenshot(path=str(artifacts / "csp-docs.png"))

            # --- an officer: the inbox (its script offers and takes the actions), my ideas, feed, preferences ----
            await page.goto(site + "/")
            await sign_in(page, "erik.lindberg")
            await shows(page, site + "/inbox/tekniska-verken", "Laddplatser vid hyreshusen")
            await visit(page, watch, site + "/inbox/tekniska-verken")
            action = page.locator(f'form.action[data-idea-id="{idea}"]')
            await action.wait_for(state="visible")  # the script unhides the actions
            await action.locator('select[name="to_state"]').select_option("acknowledged")
            await action.locator("button").click()
            done = json.loads(await page.text_content("#inbox-config"))["texts"]["done"]
            await page.wait_for_function(
                "([form, done]) => document.querySelector(form + ' .result').textContent.startsWith(done)",
                arg=[f'form.action[data-idea-id="{idea}"]', done],
                timeout=45_000,
            )
            assert await page.get_attribute(f"#idea-{idea} .state", "data-state") == "acknowledged"
            await page.screenshot(path=str(artifacts / "csp-inbox.png"))

            for path in (
                "/my/ideas",
                "/en/my/ideas",
                "/my/preferences",
                "/en/my/preferences",
                "/my/data",
                "/en/my/data",
            ):
                await visit(page, watch, site + path)
            await visit(page, watch, site + "/my/feed")
            await page.wait_for_selector("#feed-live", state="visible")  # live.js ran and its stream is open
            await page.screenshot(path=str(artifacts / "csp-feed.png"))

            # --- every HTML answer of the site carried the policy, with nothing inline allowed ---------------------
            assert watch.pages, "no page seen"
            for url, policy in watch.pages.items():
                assert policy is not None, f"{url}: no Content-Security-Policy"
                assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, f"{url}: {policy}"
                for directive in REQUIRED:
                    assert directive in policy, f"{url}: {directive!r} missing from {policy}"
            away = [url for url in watch.requests if urlsplit(url).hostname != "127.0.0.1"]
            assert away == [], away

            # --- signing out: a form post that ends at the identity provider (form-action allows it) ---------------
            await page.click("#sign-out")
            await page.wait_for_selector("#sign-in")
            assert await watch.violations(page) == [] and watch.console == []
            assert errors == []
        finally:
            await context.close()
