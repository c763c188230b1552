"""Following one idea across the services: W3C trace context in Kafka headers, and log lines that name the
idea, the event and the correlation id of the message being handled.

Every service's broker reads ``traceparent`` from each consumed record and adds it to every record published
while handling it (``publish_event`` included, whose explicit headers it extends), and to writes started by
HTTP requests (a new trace). When ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, that is FastStream's OpenTelemetry
middleware, and spans are recorded and exported with OTLP/HTTP. Without an endpoint nobody would read the
spans, so none are recorded: :class:`TraceContextMiddleware` only carries the context (FastStream's
middleware made three spans per published record, the largest single cost in routing's profile).

Beside FastStream's Kafka spans, when spans are exported, :func:`install_tracing` adds OpenTelemetry's own
instrumentations: a server span for every HTTP request (FastAPI; the operator endpoints left out), a client span
for every Redis command made while handling a request or a message (each auto-pipelined command in its caller's
trace; a background loop's polls make no traces), and a client span for every outgoing HTTP request made with HTTPX
(webhooks, the identity provider's keys), whose ``traceparent`` the request carries on. Without an endpoint none
of them is installed: nothing wraps a request, a command or a call, so they cost nothing.

No span leaves the process with an e-mail address (issue 13): :class:`MaskingSpanExporter` masks every address in
the attributes (the Kafka key among them), the events (an exception's message) and the status of each span before
the OTLP exporter sees it.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from faststream import BaseMiddleware
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.logs import log_context, masked

if TYPE_CHECKING:
    from fastapi import FastAPI
    from redis.asyncio import Redis

_PROPAGATOR = TraceContextTextMapPropagator()


_EXPORTING: weakref.WeakValueDictionary[str, TracerProvider] = weakref.WeakValueDictionary()
"""The exporting provider of each service of the process, by its ``service.name`` (the latest made)."""


def _service_name(resource: Resource | None) -> str | None:
    value = resource.attributes.get("service.name") if resource is not None else None
    return str(value) if value is not None else None


def tracer_provider(service: str, otlp_endpoint: str | None) -> TracerProvider:
    """One provider per app; it records and exports only when an OTLP endpoint is configured. Without one,
    spans are not sampled: they still carry the trace id from record to record (``traceparent`` with the
    sampled flag off), but cost no attributes, events or processing — recording every span for nobody was
    the largest single cost in routing's profile (several spans per event)."""
    resource = Resource.create({"service.name": f"kiruna-{service}"})
    provider = TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_ON) if otlp_endpoint else ALWAYS_OFF)
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        exporter = MaskingSpanExporter(OTLPSpanExporter())  # reads OTEL_EXPORTER_OTLP_* itself
        provider.add_span_processor(BatchSpanProcessor(exporter))
        _EXPORTING[f"kiruna-{service}"] = provider
    return provider


NOT_TRACED_URLS = "/healthz$,/readyz$,/metrics$"
"""The operator endpoints, asked every few seconds by probes and Prometheus: no trace for any of them."""


def install_tracing(app: FastAPI, provider: TracerProvider | None, *, redis: Redis, exporting: bool) -> None:
    """OpenTelemetry's instrumentations beside FastStream's Kafka spans, when spans are exported: HTTP server
    spans of ``app`` (FastAPI), client spans of every command of ``redis``, and client spans of every outgoing
    HTTPX request of the process (:func:`instrument_httpx`). Without export nothing is installed."""
    if not exporting or provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.metrics import NoOpMeterProvider

    # its metrics would go to no registry of ours (the services' HTTP metrics are shared/http_metrics.py's)
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        meter_provider=NoOpMeterProvider(),
        excluded_urls=NOT_TRACED_URLS,
        exclude_spans=["receive", "send"],  # one span per request, not one per body chunk
    )
    if not getattr(redis, "_is_instrumented_by_opentelemetry", False):
        # a command inside a request's or message's span is its child; one outside any (a background loop's
        # poll, every second) makes no trace of its own
        RedisInstrumentor.instrument_client(redis, tracer_provider=CurrentServiceTracerProvider())
    instrument_httpx()


_HTTPX_LOCK = threading.Lock()


def instrument_httpx() -> None:
    """Client spans for every request of every HTTPX client of the process, once. HTTPX's instrumentation
    wraps the transports process-wide with one tracer provider; :class:`CurrentServiceTracerProvider` makes
    each span with the provider of the service whose span is current (the request or message being handled),
    so a process that runs several services (the tests) names the right one, and a request made outside any
    service's span records nothing and carries no ``traceparent``."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.metrics import NoOpMeterProvider

    with _HTTPX_LOCK:
        instrumentor = HTTPXClientInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=CurrentServiceTracerProvider(), meter_provider=NoOpMeterProvider())


class CurrentServiceTracerProvider(trace.TracerProvider):
    """A tracer provider whose spans are only children: each is made by the exporting provider of the service
    whose span is current (the request or message being handled), or not at all."""

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> trace.Tracer:
        return _CurrentServiceTracer(instrumenting_module_name, instrumenting_library_version, schema_url)


class _CurrentServiceTracer(trace.Tracer):
    def __init__(self, name: str, version: str | None, schema_url: str | None) -> None:
        self.scope = (name, version, schema_url)

    def _tracer(self, context: Any = None) -> trace.Tracer:
        current = trace.get_current_span(context)
        provider = _EXPORTING.get(_service_name(getattr(current, "resource", None)) or "")
        return provider.get_tracer(*self.scope) if provider is not None else trace.NoOpTracer()

    def start_span(self, name: str, context: Any = None, *args: Any, **kwargs: Any) -> trace.Span:
        return self._tracer(context).start_span(name, context, *args, **kwargs)

    @contextlib.contextmanager
    def start_as_current_span(self, name: str, context: Any = None, *args: Any, **kwargs: Any) -> Iterator[trace.Span]:
        with self._tracer(context).start_as_current_span(name, context, *args, **kwargs) as span:
            yield span


def masked_attributes(attributes: Any) -> dict[str, Any]:
    """Span (or event) attributes with every e-mail address masked; a bytes value that names one becomes text."""
    return {name: masked(value) for name, value in dict(attributes or {}).items()}


def masked_span(span: ReadableSpan) -> ReadableSpan:
    """A copy of a finished span with every e-mail address masked: attributes, events, links and status."""
    status = span.status
    if status.description and "@" in status.description:
        status = type(status)(status.status_code, masked(status.description))
    return ReadableSpan(
        name=masked(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=masked_attributes(span.attributes),
        events=[Event(e.name, masked_attributes(e.attributes), e.timestamp) for e in span.events],
        links=[type(link)(link.context, masked_attributes(link.attributes)) for link in span.links],
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class MaskingSpanExporter(SpanExporter):
    """Exports through ``inner`` the spans with every e-mail address masked (:func:`masked_span`)."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([masked_span(span) for span in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


def telemetry_middleware(provider: TracerProvider, *, exporting: bool) -> Any:
    """FastStream's OpenTelemetry middleware (a consumer span and two producer spans per record) when spans are
    exported; otherwise :class:`TraceContextMiddleware`, which only carries the trace id along."""
    if exporting:
        return KafkaTelemetryMiddleware(tracer_provider=provider)
    return TraceContextMiddleware.factory(provider)


class TraceContextMiddleware(BaseMiddleware):
    """W3C trace context from each consumed record to every record published while handling it, without
    making spans: a record's ``traceparent`` becomes the current context of its handler, and a publish adds
    the current context's ``traceparent`` (a new trace id where none is current, e.g. an HTTP request)."""

    class factory:
        def __init__(self, provider: TracerProvider) -> None:
            self.tracer = provider.get_tracer("kiruna")

        def __call__(self, msg: Any, /, *, context: Any) -> TraceContextMiddleware:
            return TraceContextMiddleware(msg, context=context, tracer=self.tracer)

    def __init__(self, msg: Any, /, *, context: Any, tracer: trace.Tracer) -> None:
        super().__init__(msg, context=context)
        self.tracer = tracer

    async def consume_scope(self, call_next: Any, msg: Any) -> Any:
        record = msg.raw_message
        if isinstance(record, tuple):  # a batch: shared.batch gives each event its own context
            return await call_next(msg)
        parent = _PROPAGATOR.extract({"traceparent": _header(record, "traceparent") or ""})
        token = otel_context.attach(parent)
        try:
            return await call_next(msg)
        finally:
            otel_context.detach(token)

    async def publish_scope(self, call_next: Any, cmd: Any) -> Any:
        headers = cmd.headers
        if "traceparent" not in headers:
            current = trace.get_current_span()
            if not current.get_span_context().is_valid:
                current = self.tracer.start_span("publish")  # not sampled: only fresh ids
            _PROPAGATOR.inject(headers, context=trace.set_span_in_context(current))
        return await call_next(cmd)


def _header(record: Any, name: str) -> str | None:
    for key, value in getattr(record, "headers", None) or ():
        if key == name:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` (``00-<trace id>-<span id>-<flags>``)."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


class LogContextMiddleware(BaseMiddleware):
    """Subscriber middleware: while a record is handled, every log line (FastStream's ``Received`` and
    ``Processed`` included) carries ``idea_id`` (``ce_subject``), ``event_id`` (``ce_id``), ``correlation_id``,
    ``topic`` and ``trace_id``."""

    def __init__(self, msg: Any, /, *, context: Any) -> None:
        super().__init__(msg, context=context)
        self._scope = contextlib.ExitStack()
        self._fields: dict[str, str] = {}

    async def on_receive(self) -> None:
        record = self.msg
        if record is None or isinstance(record, tuple):  # publishing, or a batch: nothing to name
            return
        fields = {
            "idea_id": _header(record, "ce_subject"),
            "event_id": _header(record, "ce_id"),
            "correlation_id": _header(record, "correlation_id"),
            "trace_id": trace_id_of(_header(record, "traceparent")),
        }
        self._fields = {k: v for k, v in fields.items() if v}
        self._scope.enter_context(log_context(**self._fields))

    async def consume_scope(self, call_next: Any, msg: Any) -> Any:
        span = trace.get_current_span().get_span_context()  # the telemetry middleware's span, when outside us
        if span.is_valid:
            self._fields["trace_id"] = format(span.trace_id, "032x")
        if self._fields:
            with contextlib.suppress(Exception):  # FastStream's own log context ("Processed" is logged with it)
                self.context.get_local("log_context", {}).update(self._fields)
            with log_context(**self._fields):
                return await call_next(msg)
        return await call_next(msg)

    async def after_processed(self, exc_type: Any = None, exc_val: Any = None, exc_tb: Any = None) -> bool | None:
        self._scope.close()
        return False
