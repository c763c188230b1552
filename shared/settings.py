"""Settings from environment variables, with working local defaults.

Common names are shared by every service (``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL`` ...); each service adds
its own with a prefix (``ROUTING_PORT``, ``INTAKE_PUBLISH_TIMEOUT_S`` ...).
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.catalogue import DEFAULT_CATALOGUE_PATH
from shared.idempotency import EFFECT_KEY_TTL_S
from shared.oidc import OidcSettings


class KafkaSettings(BaseSettings):
    """How to reach Kafka and how topics are laid out. Environment names start with ``KAFKA_``."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Comma-separated host:port list")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = Field(None, description="CA bundle that signed the brokers' certificates")
    ssl_certfile: Path | None = Field(None, description="Client certificate for mutual TLS")
    ssl_keyfile: Path | None = None
    topic_prefix: str = Field("", description="Prefix of every topic name (tests and shared clusters)")
    partitions: int = Field(6, ge=1, description="Partitions of the idea topics")
    replication_factor: int = Field(1, ge=1, description="1 locally, 3 on a cluster")
    min_insync_replicas: int = Field(1, ge=1, description="2 on a three-broker cluster")
    publish_timeout_s: float = Field(5.0, gt=0, description="How long a producer waits for acks=all")
    handler_attempts: int = Field(5, ge=1, description="Tries of a failing handler before dead-lettering")
    retry_backoff_s: float = Field(0.2, ge=0, description="First retry delay; doubles each attempt")
    batch_max_records: int = Field(500, ge=1, description="Records a batch subscriber takes at once")
    batch_concurrency: int = Field(
        64, ge=1, description="Ideas a batch subscriber handles at the same time (keep below REDIS_MAX_CONNECTIONS)"
    )
    batch_wait_ms: int = Field(
        200, ge=1, description="How long an idle batch subscriber waits for records before asking again"
    )

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.security_protocol not in ("SSL", "SASL_SSL"):
            return None
        context = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
        if self.ssl_certfile:
            context.load_cert_chain(str(self.ssl_certfile), str(self.ssl_keyfile) if self.ssl_keyfile else None)
        return context


class ServiceSettings(BaseSettings):
    """What every service needs. Subclasses add their own fields under an env prefix."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias="REDIS_URL")
    redis_prefix: str = Field("kiruna", validation_alias="REDIS_KEY_PREFIX", description="Prefix of every key")
    redis_max_connections: int = Field(100, ge=1, validation_alias="REDIS_MAX_CONNECTIONS")
    redis_pool_timeout_s: float = Field(
        5.0,
        gt=0,
        validation_alias="REDIS_POOL_TIMEOUT_S",
        description="How long a request waits for a free Redis connection",
    )
    # A hung Redis (accepts, never answers) costs a handler or a probe this long, then a TimeoutError (counted,
    # retried, dead-lettered like any other failure), never for ever (shared/service.py redis_options). No command
    # of the services blocks on the server (no BLPOP, XREAD BLOCK, WAIT); a pub/sub subscription's reads are apart.
    redis_connect_timeout_s: float = Field(
        2.0, gt=0, validation_alias="REDIS_CONNECT_TIMEOUT_S", description="How long connecting to Redis may take"
    )
    redis_socket_timeout_s: float = Field(
        5.0,
        gt=0,
        validation_alias="REDIS_SOCKET_TIMEOUT_S",
        description="How long one Redis command waits for its answer (above any blocking command the services use)",
    )
    redis_health_check_interval_s: float = Field(
        30.0,
        ge=0,
        validation_alias="REDIS_HEALTH_CHECK_INTERVAL_S",
        description="A pooled Redis connection idle longer than this is checked (PING) before use; 0: never",
    )
    # Effect keys ("already handled" marks keyed by event id, delivered/sent marks, duplicate marks, texts kept only
    # to react to a later command) stop an effect happening twice. They must outlive any redelivery of their cause:
    # Kafka redelivers what a consumer had not committed (seconds to the few hours a service may be down), retry
    # queues give up within hours, a digest is sent for yesterday. 30 days is far beyond all of them, and bounds
    # Redis's memory. State that is a projection (analytics' summaries, feeds, preferences, intake's idea records)
    # is rebuilt from the topics and never expires.
    effect_key_ttl_s: int = Field(
        EFFECT_KEY_TTL_S,  # 30 days
        ge=86400,
        validation_alias="EFFECT_KEY_TTL_S",
        description="How long effect keys are kept (seconds; 30 days), longer than any redelivery window",
    )
    catalogue_path: Path = Field(DEFAULT_CATALOGUE_PATH, validation_alias="CATALOGUE_PATH")
    catalogue_check_interval_s: float = Field(
        5.0, gt=0, validation_alias="CATALOGUE_CHECK_INTERVAL_S", description="How often the catalogue file is checked"
    )
    public_base_url: str = Field(
        "http://127.0.0.1:8003",
        validation_alias="PUBLIC_BASE_URL",
        description="Where status pages are served",
    )
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    niceness: int = Field(
        0,
        ge=0,
        le=19,
        description="CPU priority below the others (os.nice) when services share a machine: throughput-bound "
        "consumers (notifications, analytics) yield to the latency-bound path (intake, routing)",
    )
    host: str = "127.0.0.1"
    port: int = 0
    group_id: str = ""
    environment: Literal["development", "production"] = Field(
        "development",
        validation_alias="KIRUNA_ENV",
        description="production: no service starts while a secret is missing or a built-in development value",
    )
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    session_secret: SecretStr = Field(
        SecretStr("local-session-secret-change-me!!"),
        validation_alias="SESSION_SECRET",
        description="Signs the people's session cookie; the same value in every service (one site, one session)",
    )
    people_kek: SecretStr = Field(
        SecretStr("a2lydW5hLWxvY2FsLWtleS1lbmNyeXB0aW9uLWtleSE="),
        validation_alias="PEOPLE_KEK",
        description="Key-encryption key (32 bytes, base64: openssl rand -base64 32) that wraps every person's data "
        "key; the same value in every service, kept as carefully as the data itself",
    )
    pseudonym_pepper: SecretStr = Field(
        SecretStr("local-pseudonym-pepper-change-me"),
        validation_alias="PSEUDONYM_PEPPER",
        description="Secret of the people's pseudonyms (HMAC-SHA256 of the e-mail address); the same value in every "
        "service, never changed once people have pseudonyms",
    )
    session_max_age_s: int = Field(
        8 * 3600, ge=60, validation_alias="SESSION_MAX_AGE_S", description="How long a sign-in lasts"
    )
    retry_after_s: int = Field(
        5, ge=1, validation_alias="RETRY_AFTER_S", description="Retry-After of every 503 (a dependency is away)"
    )
    # Limits at every door (shared/body_limit.py, shared/rate_limits.py), per service: INTAKE_MAX_BODY_BYTES ...
    max_body_bytes: int = Field(
        64 * 1024, ge=1, description="Largest request body accepted, counted as received (chunked too): 413 above"
    )
    rate_limit_per_minute: int = Field(
        120,
        ge=1,
        description="Writes (POST, PUT, PATCH, DELETE) per signed-in person, or per address, per minute: 429 above",
    )
    rate_limit_queries_per_minute: int = Field(
        300,
        ge=1,
        description="Expensive queries (the figures, the dashboard, the inbox search) per person or address per minute",
    )
    trusted_proxies: str = Field(
        "127.0.0.1",
        validation_alias="TRUSTED_PROXIES",
        description="Comma-separated addresses or networks of the proxies whose X-Forwarded-For is believed (the "
        "right-most address not among them is the client's); from any other peer the header is ignored",
    )

    @model_validator(mode="after")
    def _people_secrets_usable(self) -> ServiceSettings:
        """A key-encryption key that is not 32 bytes of base64, or an empty pepper, stops the start naming the
        setting: personal data is never written unencrypted for want of a key."""
        from shared.sealing import decode_secret_key

        decode_secret_key(self.people_kek.get_secret_value(), "PEOPLE_KEK")
        if len(self.pseudonym_pepper.get_secret_value()) < 16:
            raise ValueError("PSEUDONYM_PEPPER must be at least 16 characters (openssl rand -base64 32)")
        return self

    @model_validator(mode="after")
    def _no_unknown_variables(self) -> ServiceSettings:
        """A mistyped ``INTAKE_...`` (any variable with the service's own prefix that no setting reads) stops the
        start and names itself, instead of being silently ignored."""
        prefix = self.model_config.get("env_prefix", "")
        if not prefix:
            return self
        known = {
            name.upper()
            for name, info in type(self).model_fields.items()
            if info.validation_alias is None and not isinstance(getattr(self, name), BaseSettings)
        }
        unknown = sorted(
            name
            for name in os.environ
            if name.upper().startswith(prefix.upper()) and name[len(prefix) :].upper() not in known
        )
        if unknown:
            raise ValueError(
                f"unknown setting(s) {', '.join(unknown)}: this service has no such setting (README, 'Settings', "
                f"lists them; those with the prefix {prefix} are {', '.join(sorted(prefix + k for k in known))})"
            )
        return self


class DevelopmentSecret(ValueError):
    """A secret setting is missing or a built-in development value where that is not allowed."""


def refuse_development_secrets(settings: BaseSettings) -> None:
    """In production (``KIRUNA_ENV=production``) every secret must be set, and not to its development default:
    raise :class:`DevelopmentSecret` naming each environment variable that is not."""
    if getattr(settings, "environment", "development") != "production":
        return
    problems = [
        f"{variable} is {'not set' if not value else 'the built-in development value'}"
        for variable, value, default in _secrets(settings)
        if not value or value == default
    ]
    if problems:
        raise DevelopmentSecret(
            "refusing to start in production (KIRUNA_ENV=production): " + "; ".join(problems) + ". Set each to a "
            "long random value (the same SESSION_SECRET in every service)."
        )


def _secrets(settings: BaseModel, prefix: str | None = None) -> list[tuple[str, str, str]]:
    """(environment variable, value, default) of every secret of the settings and the settings and models they
    hold. An optional secret with no default (a mail server's password) is checked only when it is set."""
    found = []
    prefix = settings.model_config.get("env_prefix", "") if prefix is None else prefix
    for name, info in type(settings).model_fields.items():
        value = getattr(settings, name)
        variable = info.validation_alias if isinstance(info.validation_alias, str) else f"{prefix}{name}".upper()
        if isinstance(value, BaseSettings):
            found.extend(_secrets(value))
        elif isinstance(value, dict) and all(isinstance(v, BaseModel) for v in value.values()):
            for key, model in value.items():
                found.extend(_secrets(model, prefix=f"{variable}[{key}]."))
        elif isinstance(value, SecretStr) or info.annotation is SecretStr:
            default = info.default.get_secret_value() if isinstance(info.default, SecretStr) else ""
            found.append((variable, value.get_secret_value() if value else "", default))
    return found
