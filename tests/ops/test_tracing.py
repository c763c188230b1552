"""One idea followed across the services: W3C trace context in the Kafka headers (publish_event included),
log lines that name the idea, event and correlation id, and spans exported only when an endpoint is set."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.events import Envelope, RerouteIdea, RoutingTarget
from shared.logs import JsonFormatter
from shared.tracing import tracer_provider
from tests.support.apps import running
from tests.support.kafka import probe, raw_producer

pytestmark = pytest.mark.ops

IDEA = {
    "title": "Fjärrvärme till det nya badhuset",
    "description": "Det nya badhuset värms med el. Anslut det till fjärrvärmenätet när det byggs om.",
    "anonymous": True,
}


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter("routing"))
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def trace_id(record) -> str | None:
    value = dict(record.headers).get("traceparent")
    return value.decode().split("-")[1] if value else None


@pytest.mark.kafka
async def test_an_idea_carries_one_trace_from_intake_through_routing(service_settings, topics, kafka_settings):
    lines, logger = Lines(), logging.getLogger("routing")
    level = logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    try:
        async with (
            running(intake_app(service_settings(IntakeSettings))) as intake,
            running(routing_app(service_settings(RoutingSettings))),
            probe(kafka_settings, topics.submitted) as submitted,
            probe(kafka_settings, topics.routed) as routed,
        ):
            response = await intake.post("/api/v1/ideas", json=IDEA, headers={"X-Correlation-ID": "corr-trace-test"})
            assert response.status_code == 202, response.text
            idea_id = response.json()["idea_id"]
            [cause] = await submitted.wait_for(lambda rs: [r for r in rs if r.key == idea_id.encode()])
            [effect, *_] = await routed.wait_for(lambda rs: [r for r in rs if r.key == idea_id.encode()])
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
    assert trace_id(cause) and trace_id(cause) == trace_id(effect)  # the same trace across two services
    assert dict(effect.headers)["ce_id"] != dict(cause.headers)["ce_id"]  # explicit headers kept
    cause_id = dict(cause.headers)["ce_id"].decode()
    # routing's own line for the event names the idea, the cause, the correlation id and the one trace
    [handled] = [line for line in lines.lines if line.get("cause_event_id") == cause_id]
    assert handled["message"] == "idea routed", lines.lines[-5:]
    assert handled["idea_id"] == idea_id and handled["trace_id"] == trace_id(cause)
    assert handled["correlation_id"] == dict(cause.headers)["correlation_id"].decode()


@pytest.mark.kafka
async def test_a_one_message_subscriber_continues_the_trace_of_its_record(service_settings, topics, kafka_settings):
    """Routing's commands are read one record at a time (not in batches): the trace goes on there too."""
    idea_id = str(uuid.uuid4())
    order = Envelope.wrap(
        RerouteIdea(
            idea_id=idea_id,
            organisations=(RoutingTarget(organisation="kirunabostader"),),
            requested_by="innovation.office",
            reason="Bostadsfråga",
        ),
        source="/tests",
    )
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with (
        running(routing_app(service_settings(RoutingSettings))),
        probe(kafka_settings, topics.routed) as routed,
        raw_producer(kafka_settings) as producer,
    ):
        headers = [("traceparent", traceparent.encode())]
        await producer.send_and_wait(topics.routing_commands, order.to_bytes(), key=idea_id.encode(), headers=headers)
        [effect, *_] = await routed.wait_for(lambda rs: [r for r in rs if r.key == idea_id.encode()])
    assert trace_id(effect) == "0af7651916cd43dd8448eb211c80319c"


def test_spans_are_exported_with_otlp_only_when_an_endpoint_is_set(monkeypatch):
    received: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.path, self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        silent = tracer_provider("routing", None)
        assert not silent._active_span_processor._span_processors  # made, never exported
        endpoint = f"http://127.0.0.1:{server.server_port}"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        provider = tracer_provider("routing", endpoint)
        with provider.get_tracer("test").start_as_current_span("ideas.submitted.v2 process") as span:
            span.set_attribute("messaging.kafka.message.key", b"anna.svensson@kiruna.se")  # no address leaves
        assert provider.force_flush(10_000)
        provider.shutdown()
    finally:
        server.shutdown()
    assert received and received[0][0] == "/v1/traces"
    assert b"kiruna-routing" in received[0][1] and b"ideas.submitted.v2 process" in received[0][1]
    assert b"anna.svensson" not in received[0][1] and b"a***@kiruna.se" in received[0][1]
