"""Every service's live /metrics: valid for Prometheus (promtool check metrics), with HTTP, Kafka and lag
metrics, every metric the rules and the dashboard use, and no unbounded label values."""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid

import httpx
import pytest

from services.analytics.app import create_app as analytics_app
from services.analytics.settings import AnalyticsSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.notifications.app import create_app as notifications_app
from services.notifications.settings import NotificationsSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.events import Envelope, IdeaSubmitted
from shared.kafka import event_headers
from shared.lag import LagMonitor
from tests.support.apps import running
from tests.support.identity import ANNA, bearer
from tests.support.kafka import eventually, raw_producer

pytestmark = [pytest.mark.kafka, pytest.mark.ops]

IDEA = {
    "title": "Snöröjning av cykelbanorna först",
    "description": "Ploga cykelbanorna före bilvägarna på morgonen, så fler cyklar till jobbet hela vintern.",
}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    found = []
    for line in text.splitlines():
        if line and not line.startswith("#") and (match := SAMPLE.match(line)):
            found.append((match["name"], dict(LABEL.findall(match["labels"] or "")), float(match["value"])))
    return found


def families(text: str) -> set[str]:
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


async def test_every_service_serves_valid_bounded_metrics(
    service_settings, topics, kafka_settings, promtool, monkeypatch
):
    monkeypatch.setenv("CONSUMER_LAG_INTERVAL_S", "0.5")
    async with (
        running(intake_app(service_settings(IntakeSettings))) as intake,
        running(routing_app(service_settings(RoutingSettings))) as routing,
        running(notifications_app(service_settings(NotificationsSettings))) as notifications,
        running(analytics_app(service_settings(AnalyticsSettings, metrics_interval_s=0.5))) as analytics,
    ):
        response = await intake.post("/api/v1/ideas", json=IDEA, headers=bearer(ANNA))
        assert response.status_code == 202, response.text
        idea_id = response.json()["idea_id"]

        async def routed():
            answer = await analytics.get(f"/api/v1/ideas/{idea_id}")
            return answer.status_code == 200 and answer.json()["state"] == "routed"

        await eventually(routed, timeout=30)
        clients = {"intake": intake, "routing": routing, "notifications": notifications, "analytics": analytics}

        async def lag_measured():
            texts = {name: (await client.get("/metrics")).text for name, client in clients.items()}
            ok = all(any(n == "kiruna_consumer_lag_messages" for n, _, _ in samples(t)) for t in texts.values())
            return texts if ok else None

        texts: dict[str, str] = await eventually(lag_measured, timeout=20)

    everything: set[str] = set()
    for service, text in texts.items():
        checked = await asyncio.to_thread(
            subprocess.run,
            [promtool, "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert checked.returncode == 0 and not checked.stdout.strip(), f"{service}: {checked.stdout}{checked.stderr}"
        names = families(text)
        everything |= names
        for needed in (
            "kiruna_http_requests_total",
            "kiruna_http_request_duration_seconds",
            "kiruna_consumer_lag_messages",
            "kiruna_dead_letters_total",
            "faststream_received_messages_total",
            "faststream_published_messages_total",
            "kiruna_published_events_total",
            "kiruna_publish_seconds",
        ):
            assert needed in names, f"{service} lacks {needed}"
        for name, labels, _ in samples(text):
            for label, value in labels.items():
                assert not UUID.search(value) and "@" not in value, f"{service}: {name}{{{label}={value!r}}}"
        http = [labels for name, labels, _ in samples(text) if name == "kiruna_http_requests_total"]
        assert {"route", "method", "status"} <= set(http[0]) and all(
            re.fullmatch(r"[1-5]xx", labels["status"]) for labels in http
        )
        lag = [labels for name, labels, _ in samples(text) if name == "kiruna_consumer_lag_messages"]
        assert all(labels["group"].endswith("." + labels["topic"]) for labels in lag)
    assert any(
        labels["route"] == "/api/v1/ideas/{idea_id}"
        for name, labels, _ in samples(texts["analytics"])
        if name == "kiruna_http_requests_total"
    )
    # the metric names and labels the rules and dashboards read are checked in tests/ops/test_dashboards.py


async def test_the_counters_alerts_read_are_at_zero_from_the_first_scrape_and_readiness_is_measured(
    service_settings, topics, monkeypatch
):
    """After a start, the first scrape already has every dead-letter and failed-notification series at 0 (so the
    first failure is an increase an alert sees), and the service sets kiruna_service_ready itself: nobody here
    calls /readyz."""
    monkeypatch.setenv("READINESS_INTERVAL_S", "0.2")
    routing = routing_app(service_settings(RoutingSettings))
    notifications = notifications_app(service_settings(NotificationsSettings))
    async with running(routing) as routing_client, running(notifications) as notifications_client:
        first = {
            "routing": samples((await routing_client.get("/metrics")).text),
            "notifications": samples((await notifications_client.get("/metrics")).text),
        }

        async def ready_by_itself():
            texts = [(await c.get("/metrics")).text for c in (routing_client, notifications_client)]
            values = [v for t in texts for n, _, v in samples(t) if n == "kiruna_service_ready"]
            return values == [1.0, 1.0]

        await eventually(ready_by_itself, timeout=20)
    for service, app in (("routing", routing), ("notifications", notifications)):
        consumed = {t.name for s in app.state.runtime.broker.subscribers for t in s.topics}
        assert consumed, f"{service} consumes no topic"
        dead = {
            (labels["topic"], labels["reason"]): value
            for name, labels, value in first[service]
            if name == "kiruna_dead_letters_total" and labels["service"] == service
        }
        for topic in consumed:
            for reason in ("malformed", "rejected", "failed"):
                assert dead.get((topic, reason)) == 0.0, f"{service}: no kiruna_dead_letters_total at 0 for {topic}"
        waits = {
            (labels["topic"], labels["dependency"])
            for name, labels, value in first[service]
            if name == "kiruna_dependency_waits_total" and value == 0.0
        }
        assert {(topic, "redis") for topic in consumed} <= waits, service
        assert [v for n, _, v in first[service] if n == "kiruna_service_ready"] in ([0.0], [1.0])
    failed = {
        labels["channel"]: value
        for name, labels, value in first["notifications"]
        if name == "kiruna_notifications_total" and labels["outcome"] == "failed"
    }
    assert failed == {"in-app": 0.0, "email": 0.0, "webhook": 0.0}
    assert (topics.notifications_dlq.removesuffix(".dlq"), "delivery-failed") in {
        (labels["topic"], labels["reason"])
        for name, labels, _ in first["notifications"]
        if name == "kiruna_dead_letters_total"
    }


async def test_consumer_lag_counts_what_a_group_has_not_handled(service_settings, topics, kafka_settings):
    app = routing_app(service_settings(RoutingSettings))
    runtime = app.state.runtime
    monitor = LagMonitor(
        service="routing",
        kafka=kafka_settings,
        broker=runtime.broker,
        gauge=runtime.metrics.consumer_lag,
        logger=runtime.logger,
    )
    ideas = [
        Envelope.wrap(
            IdeaSubmitted(idea_id=str(uuid.uuid4()), title=f"Idé {i}", description="Fjärrvärme", anonymous=True),
            source="/tests",
        )
        for i in range(5)
    ]
    try:
        async with raw_producer(kafka_settings) as producer:
            for event in ideas:
                headers = [(k, v.encode()) for k, v in event_headers(event).items()]
                await producer.send_and_wait(
                    topics.submitted, event.to_bytes(), key=event.subject.encode(), headers=headers
                )
        before = await monitor.measure()
        group = f"{runtime.settings.group_id}.{topics.submitted}"
        assert sum(v for (g, t, _), v in before.items() if g == group and t == topics.submitted) == 5
        async with running(app) as client:

            async def caught_up():
                lag = await monitor.measure()
                return sum(v for (g, _, _), v in lag.items() if g == group) == 0

            await eventually(caught_up, timeout=30, interval=0.3)
            text = (await client.get("/metrics")).text
        assert f'group="{group}"' in text
    finally:
        await monitor.close()


async def test_http_metrics_label_the_route_template_and_count_answers_of_outer_middlewares(service_settings):
    app = intake_app(service_settings(IntakeSettings, max_body_bytes=100))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        await client.get("/healthz")
        await client.get("/no/such/page")
        big = await client.post("/api/v1/ideas", content=b"x" * 500, headers={"content-type": "application/json"})
        assert big.status_code == 413
        text = (await client.get("/metrics")).text
    counted = {
        (labels["method"], labels["route"], labels["status"]): value
        for name, labels, value in samples(text)
        if name == "kiruna_http_requests_total"
    }
    assert counted[("GET", "/healthz", "2xx")] == 1
    assert counted[("GET", "(unmatched)", "4xx")] == 1
    assert sum(v for (method, _, status), v in counted.items() if method == "POST" and status == "4xx") == 1
    assert 'kiruna_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/healthz"' in text
