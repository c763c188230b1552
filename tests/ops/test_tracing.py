"""One idea followed across the services: W3C trace context in the Kafka headers (publish_event included),
log lines that name the idea, event and correlation id, and spans exported only when an endpoint is set: then
one trace holds intake's HTTP request, the Kafka publishes and consumes, the four services' handlers and their
Redis commands (received here by a small OTLP/HTTP collector, as Jaeger would receive them: `make traces`)."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from services.analytics.app import create_app as analytics_app
from services.analytics.settings import AnalyticsSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.notifications.app import create_app as notifications_app
from services.notifications.settings import NotificationsSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.events import Envelope, RerouteIdea, RoutingTarget
from shared.logs import JsonFormatter
from shared.tracing import instrument_httpx, tracer_provider
from tests.support.apps import running
from tests.support.kafka import eventually, probe, raw_producer

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
    logger.setLevel(logging.DEBUG)  # each idea's line is DEBUG; a batch's summary line is INFO
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


@dataclass(frozen=True)
class Span:
    service: str
    scope: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str


class Collector:
    """An OTLP/HTTP trace receiver on a free port of 127.0.0.1 (``POST /v1/traces``, protobuf), as a collector or
    Jaeger runs it: the requests as received, and their spans decoded."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        self.spans: list[Span] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # a connection that sends nothing can hold no thread for long

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                collector.requests.append((self.path, body))
                collector.spans.extend(decoded(body))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        # a thread per connection: four services' exporters at once, none waiting behind another's request
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"

    def trace(self, trace_id: str) -> list[Span]:
        return [span for span in list(self.spans) if span.trace_id == trace_id]


def decoded(body: bytes) -> Iterator[Span]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    for resource_spans in request.resource_spans:
        attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield Span(
                    service=attributes.get("service.name", ""),
                    scope=scope_spans.scope.name,
                    name=span.name,
                    kind=span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_id=span.parent_span_id.hex(),
                )


@contextlib.contextmanager
def collecting(monkeypatch) -> Iterator[Collector]:
    """A collector, and every service made meanwhile exporting to it (spans sent every 100 ms)."""
    collector = Collector()
    thread = threading.Thread(target=collector.server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    try:
        yield collector
    finally:
        collector.server.shutdown()
        collector.server.server_close()


def routed_by_routing(span: Span) -> bool:
    return span.name.endswith("ideas.routed.v1 process")


@pytest.mark.kafka
async def test_one_trace_holds_a_submitted_idea_across_all_four_services(
    monkeypatch, service_settings, topics, kafka_settings
):
    with collecting(monkeypatch) as collector:
        async with (
            running(intake_app(service_settings(IntakeSettings))) as intake,
            running(routing_app(service_settings(RoutingSettings))),
            running(notifications_app(service_settings(NotificationsSettings))),
            running(analytics_app(service_settings(AnalyticsSettings))) as analytics,
            probe(kafka_settings, topics.submitted) as submitted,
        ):
            response = await intake.post("/api/v1/ideas", json=IDEA)
            assert response.status_code == 202, response.text
            idea_id = response.json()["idea_id"]
            [record] = await submitted.wait_for(lambda rs: [r for r in rs if r.key == idea_id.encode()])
            trace_id = dict(record.headers)["traceparent"].decode().split("-")[1]

            wanted = {
                ("kiruna-intake", "SERVER"): "intake's HTTP request",
                ("kiruna-intake", "PRODUCER"): "intake's publish",
                ("kiruna-routing", "CONSUMER"): "routing's handler",
                ("kiruna-notifications", "PRODUCER"): "notifications' publish",
                ("kiruna-notifications", "CONSUMER"): "notifications' handler",
                ("kiruna-analytics", "CONSUMER"): "analytics' handler",
                # the routing's consumers by name: a span of the submission alone does not say the routing came
                ("kiruna-notifications", "routed"): "notifications' handler of the routing",
                ("kiruna-analytics", "routed"): "analytics' handler of the routing",
                ("kiruna-intake", "redis"): "intake's Redis commands",
                ("kiruna-routing", "redis"): "routing's Redis commands",
                ("kiruna-notifications", "redis"): "notifications' Redis commands",
                ("kiruna-analytics", "redis"): "analytics' Redis commands",
            }

            def missing() -> list[str]:
                spans = collector.trace(trace_id)
                seen = {(s.service, "redis" if s.scope.endswith(".redis") else s.kind) for s in spans}
                seen |= {(s.service, "routed") for s in spans if s.kind == "CONSUMER" and routed_by_routing(s)}
                return [what for key, what in wanted.items() if key not in seen]

            async def complete() -> bool:
                return not missing()

            try:
                await eventually(complete, timeout=60)
            except AssertionError:
                raise AssertionError(f"trace {trace_id} lacks {missing()}: {collector.trace(trace_id)}") from None
            assert (await analytics.get("/healthz")).status_code == 200  # a probe: no trace (checked below)
    spans = collector.trace(trace_id)
    # one trace, one tree: a single root (intake's HTTP request), every other span's parent in the trace
    ids = {span.span_id for span in spans}
    [root] = [span for span in spans if span.parent_id not in ids]
    assert (root.service, root.kind, root.name) == ("kiruna-intake", "SERVER", "POST /api/v1/ideas"), root
    # routing publishes in Kafka transactions (shared/transactions.py): what it routed is handled as its child
    [routing] = [s for s in spans if s.service == "kiruna-routing" and s.kind == "CONSUMER"]
    routed = [s for s in spans if s.kind == "CONSUMER" and routed_by_routing(s)]
    assert {s.service for s in routed} >= {"kiruna-notifications", "kiruna-analytics"}
    assert all(s.parent_id == routing.span_id for s in routed)
    assert not [s for s in collector.spans if s.name.startswith("GET /healthz")]  # probes are not traced
    # a Redis command is a child of the work that made it: background polls make no traces of their own
    assert not [s for s in collector.spans if s.scope.endswith(".redis") and not s.parent_id]
    assert all(path == "/v1/traces" for path, _ in collector.requests)
    print("spans per service:", dict(Counter(span.service for span in spans)))


async def test_an_outgoing_http_request_is_a_span_of_the_service_whose_work_makes_it(monkeypatch):
    """HTTPX is instrumented process-wide; its span belongs to the service whose span is current, and the
    request carries that trace on in its ``traceparent``. Outside any service's span: no span, no header."""
    headers: list[dict[str, str]] = []

    class Webhook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            headers.append({k.lower(): v for k, v in self.headers.items()})
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    webhook = HTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{webhook.server_port}/hook"
    try:
        with collecting(monkeypatch) as collector:
            notifications = tracer_provider("notifications", collector.endpoint)
            analytics = tracer_provider("analytics", collector.endpoint)
            instrument_httpx()
            async with httpx.AsyncClient() as client:
                with notifications.get_tracer("test").start_as_current_span("deliver", kind=trace.SpanKind.CONSUMER):
                    assert (await client.post(url, json={})).status_code == 204
                assert (await client.post(url, json={})).status_code == 204  # outside any service's work
            for provider in (notifications, analytics):
                assert provider.force_flush(10_000)
                provider.shutdown()
    finally:
        webhook.shutdown()
        webhook.server_close()
    [deliver] = [s for s in collector.spans if s.name == "deliver"]
    [call] = [s for s in collector.spans if s.kind == "CLIENT"]
    assert (call.service, call.trace_id, call.parent_id) == ("kiruna-notifications", deliver.trace_id, deliver.span_id)
    assert call.name == "POST" and call.scope == "opentelemetry.instrumentation.httpx"
    assert headers[0]["traceparent"].split("-")[1:3] == [call.trace_id, call.span_id]
    assert "traceparent" not in headers[1]
    assert len(collector.spans) == 2


def test_nothing_is_instrumented_when_no_endpoint_is_set(monkeypatch, service_settings):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    app = routing_app(service_settings(RoutingSettings))
    runtime = app.state.runtime
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    assert not getattr(runtime.redis, "_is_instrumented_by_opentelemetry", False)
    assert not runtime.tracer._active_span_processor._span_processors  # no exporter: nothing recorded either


def test_spans_are_exported_with_otlp_only_when_an_endpoint_is_set(monkeypatch):
    with collecting(monkeypatch) as collector:
        silent = tracer_provider("routing", None)
        assert not silent._active_span_processor._span_processors  # made, never exported
        provider = tracer_provider("routing", collector.endpoint)
        with provider.get_tracer("test").start_as_current_span("ideas.submitted.v2 process") as span:
            span.set_attribute("messaging.kafka.message.key", b"anna.svensson@kiruna.se")  # no address leaves
        assert provider.force_flush(10_000)
        provider.shutdown()
    received = collector.requests
    assert received and received[0][0] == "/v1/traces"
    assert b"kiruna-routing" in received[0][1] and b"ideas.submitted.v2 process" in received[0][1]
    assert b"anna.svensson" not in received[0][1] and b"a***@kiruna.se" in received[0][1]
