"""Operational knobs every service shares: how long a stop may take, how often consumer lag is measured,
how long idle HTTP connections stay open, how often the service checks its own readiness. Plain environment names
(``SHUTDOWN_TIMEOUT_S``, ``CONSUMER_LAG_INTERVAL_S``, ``HTTP_KEEP_ALIVE_S``, ``READINESS_INTERVAL_S``), the same for
every service.
Traces are exported when the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (see :mod:`shared.tracing`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OpsSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    shutdown_timeout_s: float = Field(
        30.0,
        gt=0,
        validation_alias="SHUTDOWN_TIMEOUT_S",
        description="On SIGTERM the service stops consuming, finishes the messages in flight, commits, flushes "
        "and closes the producer, and is gone within this time",
    )
    consumer_lag_interval_s: float = Field(
        15.0, gt=0, validation_alias="CONSUMER_LAG_INTERVAL_S", description="How often consumer lag is measured"
    )
    readiness_interval_s: float = Field(
        10.0,
        gt=0,
        validation_alias="READINESS_INTERVAL_S",
        description="How often the service checks its connections to Kafka and Redis and sets kiruna_service_ready "
        "(also set by every GET /readyz)",
    )
    http_keep_alive_s: float = Field(
        75.0,
        gt=0,
        validation_alias="HTTP_KEEP_ALIVE_S",
        description="How long an idle HTTP connection is kept open; longer than any load balancer's or client's "
        "idle timeout in front of the service (60 s for most), or they reuse connections the service has closed",
    )
    otlp_endpoint: str | None = Field(
        None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT", description="OTLP/HTTP collector; unset: no export"
    )

    @property
    def handlers_grace_s(self) -> float:
        """How long the consumers wait for in-flight handlers; the rest of the budget closes the clients."""
        return self.shutdown_timeout_s * 0.6
