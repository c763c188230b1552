"""Following one idea across the services: W3C trace context in Kafka headers, and log lines that name the
idea, the event and the correlation id of the message being handled.

Every service's broker carries FastStream's OpenTelemetry middleware. It reads ``traceparent`` from each
consumed record and adds it to every record published while handling it (``publish_event`` included, whose
explicit headers it extends), and to writes started by HTTP requests (a new trace). Spans are exported with
OTLP/HTTP only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; without it they are made (so the context flows)
and dropped.
"""

from __future__ import annotations

import contextlib
from typing import Any

from faststream import BaseMiddleware
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from shared.logs import log_context


def tracer_provider(service: str, otlp_endpoint: str | None) -> TracerProvider:
    """One provider per app; it exports only when an OTLP endpoint is configured."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"kiruna-{service}"}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # reads OTEL_EXPORTER_OTLP_* itself
    return provider


def telemetry_middleware(provider: TracerProvider) -> KafkaTelemetryMiddleware:
    return KafkaTelemetryMiddleware(tracer_provider=provider)


def _header(record: Any, name: str) -> str | None:
    for key, value in getattr(record, "headers", None) or ():
        if key == name:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None


def _trace_id(traceparent: str | None) -> str | None:
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
            "trace_id": _trace_id(_header(record, "traceparent")),
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
