"""A corpus of XSS payloads sent through the real doors (the API with tokens: titles, descriptions, comments and an
officer's reason; the Kafka topics for what only other systems write: submitters' names, sealed with the platform's
keyring as intake seals them, and routing reasons), then every
page that shows user text rendered in headless Chromium. Each payload, if it ran, would log ``XSS-RAN-<n>`` to the
console and set ``window.__xss``; template injections would show ``tpl-49-tpl``. ``scripts_run`` counts what did."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from shared.catalogue import load_catalogue
from shared.settings import ServiceSettings
from shared.topics import Topics
from tests.support import identity

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def js(n: int) -> str:
    """Script that reports itself: no quotes and no spaces, so it survives unquoted attributes too."""
    return f"window.__xss={n},console.log(/XSS-RAN-{n}/.source)"


TEMPLATES = [
    "<script>{js}</script>",
    "<img src=x onerror={js}>",
    '<img src="x" onerror="{js}">',
    "<svg onload={js}>",
    "<svg><script>{js}</script></svg>",
    '"><script>{js}</script>',
    "'><img src=x onerror={js}>",
    '" autofocus onfocus="{js}" x="',
    "' autofocus onfocus='{js}' x='",
    "javascript:{js}",
    '<a href="javascript:{js}">klicka</a>',
    '<iframe srcdoc="<script>parent.{js}</script>"></iframe>',
    "<body onload={js}>",
    "<details open ontoggle={js}>",
    "<input autofocus onfocus={js}>",
    "</textarea><script>{js}</script>",
    "</title><script>{js}</script>",
    "</script><script>{js}</script>",
    "--><script>{js}</script><!--",
    "<math><mtext></p><script>{js}</script></mtext></math>",
    "<scr<script>ipt>{js}</scr</script>ipt>",
    "<ScRiPt>{js}</sCrIpT>",
    "\\u003cscript\\u003e{js}\\u003c/script\\u003e",
    "\uff1cscript\uff1e{js}\uff1c/script\uff1e",
    "<svg><a xlink:href=javascript:{js}><text x=20 y=20>XSS</text></a></svg>",
    '<object data="javascript:{js}"></object>',
    "<marquee onstart={js}>",
    "\u202e<img src=x onerror={js}>",
    "{{{{constructor.constructor('{js}')()}}}}",
    "tpl-{{{{7*7}}}}-tpl",
    "tpl-${{7*7}}-tpl",
    "tpl-{{%raw%}}{{{{7*7}}}}{{%endraw%}}-tpl",
    "tpl-#{{7*7}}-tpl",
]


def corpus() -> list[str]:
    return [template.format(js=js(n)) for n, template in enumerate(TEMPLATES, start=1)]


def title_of(payload: str, n: int) -> str:
    """Titles are 3-200 characters: the payload itself when it fits."""
    return payload if 3 <= len(payload) <= 200 else f"XSS {n} {payload}"[:200]


@dataclass
class Pages:
    rendered: int = 0
    scripts_run: int = 0
    markers: set[str] = field(default_factory=set)
    findings: list[str] = field(default_factory=list)
    submitted: int = 0
    showing: int = 0  # pages that show at least one payload (as text, escaped)
    without: list[str] = field(default_factory=list)
    fivexx: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def submit(urls: dict[str, str], settings: ServiceSettings, result: Pages) -> list[str]:
    """Every payload through the doors; returns the ids of the ideas that carry them."""
    payloads = corpus()
    anna, per, office = (identity.bearer(u) for u in (identity.ANNA, identity.PER, identity.INNOVATION_OFFICE))
    ideas: list[str] = []
    with httpx.Client(base_url=urls["intake"], timeout=30) as client:
        for n, payload in enumerate(payloads, start=1):
            answer = client.post(
                "/api/v1/ideas",
                headers=anna,
                json={"title": title_of(payload, n), "description": payload, "language": "sv"},
            )
            result.submitted += 1
            if answer.status_code != 202:
                result.problems.append(f"named idea {n} refused: {answer.status_code} {answer.text[:200]}")
                continue
            ideas.append(answer.json()["idea_id"])
        target = ideas[0] if ideas else None
        if target:
            wait_known(urls, ideas)
            for n, payload in enumerate(payloads, start=1):
                answer = client.post(f"/api/v1/ideas/{target}/comments", headers=per, json={"text": payload})
                result.submitted += 1
                if answer.status_code != 202:
                    result.problems.append(f"comment {n} refused: {answer.status_code} {answer.text[:200]}")
            client.post(f"/api/v1/ideas/{target}/follow", headers=anna)
            owners = ("kirunabostader", "tekniska-verken", "kiruna-kommun")
            for n, (idea, payload) in enumerate(zip(ideas[1:], payloads[1:], strict=False)):
                if n % 2:  # to every organisation's inbox, with the payload as the innovation office's reason
                    body = {"organisations": [{"organisation": owners[n // 2 % 3]}], "reason": payload}
                    answer = client.post(f"/api/v1/ideas/{idea}/reroute", headers=office, json=body)
                else:  # declined, with the payload as the reason the submitter reads
                    body = {"to_state": "declined", "reason": payload}
                    answer = client.post(f"/api/v1/ideas/{idea}/status", headers=office, json=body)
                result.submitted += 1
                if answer.status_code != 202:
                    result.problems.append(f"{body} refused: {answer.status_code} {answer.text[:200]}")
    ideas += asyncio.run(from_other_systems(settings, payloads))
    result.submitted += len(payloads)
    wait_known(urls, ideas)
    wait_feed(urls["notifications"], anna)
    wait_projected(urls, ideas, len(payloads), office)
    return ideas


def wait_projected(
    urls: dict[str, str], ideas: list[str], comments: int, office: dict[str, str], timeout_s: float = 45
) -> None:
    """Until analytics shows the comments on the first idea and the declines of the others (with the payloads as
    their reasons), so the pages show every payload."""
    if not ideas:
        return
    declined = [idea for n, idea in enumerate(ideas[1:]) if not n % 2]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        first = httpx.get(f"{urls['analytics']}/api/v1/ideas/{ideas[0]}", headers=office, timeout=10)
        states = [httpx.get(f"{urls['analytics']}/api/v1/ideas/{i}", timeout=10) for i in declined]
        if (
            first.status_code == 200
            and first.json().get("comments", 0) >= comments
            and all(a.status_code == 200 and a.json().get("state") == "declined" for a in states)
        ):
            return
        time.sleep(0.5)


def wait_feed(notifications: str, headers: dict[str, str], timeout_s: float = 45) -> None:
    """Until the submitter's feed tells of her ideas (notifications may be behind under load)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = httpx.get(f"{notifications}/api/v1/people/me/feed", headers=headers, timeout=10)
        if answer.status_code == 200 and "XSS-RAN-" in answer.text:
            return
        time.sleep(1)


async def from_other_systems(settings: ServiceSettings, payloads: list[str]) -> list[str]:
    """What no API lets a person write, as another system would publish it: a submitter's name (sealed under her
    data key, which the platform's keyring makes and records as intake's would) and organisation, and an idea routed
    with a payload as its reason."""
    from aiokafka import AIOKafkaProducer
    from redis.asyncio import Redis

    from shared.kafka import client_options
    from shared.keyring import Keyring

    kafka = settings.kafka
    topics = Topics(kafka.topic_prefix)
    redis = Redis.from_url(settings.redis_url)
    keyring = Keyring.from_settings(redis, settings, topics.people_keys)
    producer = AIOKafkaProducer(**client_options(kafka), acks="all")
    await producer.start()
    ideas = []
    try:
        for n, payload in enumerate(payloads, start=1):
            idea = str(uuid.uuid4())
            ideas.append(idea)
            submitter, _ = await keyring.person_ref(
                "anna.svensson@kiruna.se", payload[:200], organisation="kirunabostader"
            )
            submitted = {
                "idea_id": idea,
                "title": title_of(payload, n),
                "description": payload,
                "anonymous": False,
                "submitter": submitter.model_dump(exclude_none=True),
                "channel": "kafka",
            }
            routed = {
                "idea_id": idea,
                "title": title_of(payload, n),
                "organisations": [{"organisation": "kirunabostader"}],
                "reason": payload,
            }
            for topic, kind, data in (
                (topics.submitted, "idea.submitted.v2", submitted),
                (topics.routed, "idea.routed.v1", routed),
            ):
                event = {
                    "specversion": "1.0",
                    "id": str(uuid.uuid4()),
                    "source": "/fuzz/xss",
                    "type": f"se.kiruna.innovation.{kind}",
                    "time": datetime.now(UTC).isoformat(),
                    "subject": idea,
                    "data": data,
                }
                await producer.send_and_wait(topic, json.dumps(event).encode(), key=idea.encode())
    finally:
        await producer.stop()
        await keyring.close()
        await redis.aclose()
    return ideas


def wait_known(urls: dict[str, str], ideas: list[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(ideas)
    while pending and time.monotonic() < deadline:
        pending = [
            i for i in pending if httpx.get(f"{urls['analytics']}/api/v1/ideas/{i}", timeout=10).status_code != 200
        ]
        if pending:
            time.sleep(0.5)


def pages(urls: dict[str, str], ideas: list[str]) -> list[tuple[str, str | None]]:
    """(url, who) for every page that shows user text, as the person who sees the most of it."""
    analytics, notifications, intake = urls["analytics"], urls["notifications"], urls["intake"]
    organisations = load_catalogue().organisation_ids
    found: list[tuple[str, str | None]] = []
    for n, idea in enumerate(ideas):
        found.append((f"{analytics}/ideas/{idea}", identity.ADMIN))  # with comments and actors
        if n % 4 == 0:
            found.append((f"{analytics}/ideas/{idea}", None))  # the public status page (the same texts, fewer)
    found.append((f"{analytics}/en/ideas/{ideas[0]}", identity.ERIK))
    for org in organisations:
        found.append((f"{analytics}/inbox/{org}", identity.ADMIN))
    found.append((f"{analytics}/en/inbox/kirunabostader", identity.SARA))
    found.append((f"{analytics}/inbox/kirunabostader?q=script", identity.SARA))
    for path in ("/dashboard", "/en/dashboard"):
        found.append((f"{analytics}{path}", None))
    found.append((f"{analytics}/my/ideas", identity.ANNA))
    found.append((f"{analytics}/en/my/ideas", identity.ANNA))
    found.append((f"{notifications}/my/feed", identity.ANNA))
    found.append((f"{notifications}/en/my/feed", identity.ANNA))
    found.append((f"{notifications}/my/feed", identity.PER))
    found.append((f"{notifications}/my/preferences", identity.ANNA))
    found.append((f"{intake}/", identity.ANNA))
    found.append((f"{intake}/en", None))
    return found


TEMPLATE_EVALUATED = re.compile(r"tpl-49-tpl")


CONTROL = "data:text/html,<p>control</p><img src=x onerror=" + js(0) + ">"


async def render(targets: list[tuple[str, str | None]], result: Pages) -> None:
    """Each page in a fresh page of one browser context per person (their bearer token on every request); first
    a control page whose script must be seen to run, or the detector is broken and the run fails."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        contexts = {}
        try:
            control = await browser.new_page()
            seen: list[str] = []
            control.on("console", lambda message: seen.append(message.text))
            await control.goto(CONTROL)
            await control.wait_for_timeout(200)
            if "XSS-RAN-0" not in seen or await control.evaluate("window.__xss") != 0:
                result.problems.append("the detector did not see the control page's script run")
            await control.close()
            for url, who in targets:
                if who not in contexts:
                    headers = identity.bearer(who) if who else {}
                    contexts[who] = await browser.new_context(extra_http_headers=headers)
                page = await contexts[who].new_page()
                ran: set[str] = set()
                page.on("console", lambda message, ran=ran: ran.update(re.findall(r"XSS-RAN-\d+", message.text)))
                page.on("dialog", lambda dialog, ran=ran: (ran.add(f"dialog:{dialog.message}"), dialog.dismiss()))
                try:
                    answer = await page.goto(url, wait_until="load", timeout=30_000)
                    await page.wait_for_timeout(100)
                    for link in await page.query_selector_all('a[href^="javascript:" i]'):
                        try:
                            await link.click(timeout=500, no_wait_after=True)
                        except Exception:
                            pass  # hidden or covered: it could not have been clicked by a person either
                    await page.wait_for_timeout(100)
                    marker = await page.evaluate("window.__xss")
                    if marker is not None:
                        ran.add(f"XSS-RAN-{marker}")
                    text = await page.content()
                    if TEMPLATE_EVALUATED.search(text):
                        ran.add("template-evaluated")
                    status = answer.status if answer else 0
                    if "XSS-RAN-" in text or "tpl-" in text:
                        result.showing += 1
                    else:
                        result.without.append(f"{url.split('/', 3)[-1]} as {who or 'anonymous'}")
                    if status != 200:
                        result.problems.append(f"GET {url} as {who or 'anonymous'} -> {status}: nothing to look at")
                    if status >= 500:
                        result.fivexx.append(f"GET {url} as {who or 'anonymous'} -> {status}: {text[:300]}")
                except Exception as exc:
                    result.problems.append(f"{url} as {who or 'anonymous'}: {exc!r}"[:300])
                finally:
                    await page.close()
                result.rendered += 1
                if ran:
                    result.scripts_run += len(ran)
                    result.markers |= ran
                    result.findings.append(f"{url} as {who or 'anonymous'}: {', '.join(sorted(ran))}")
        finally:
            await browser.close()


def fuzz_pages(urls: dict[str, str], settings: ServiceSettings) -> Pages:
    result = Pages()
    ideas = submit(urls, settings, result)
    if not ideas:
        result.problems.append("no idea carried a payload: nothing to render")
        return result
    asyncio.run(render(pages(urls, ideas), result))
    return result
