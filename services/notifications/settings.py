"""Notifications' settings. Its own names start with ``NOTIFICATIONS_``; the mail server uses the common
unprefixed names (``SMTP_HOST``, ``SMTP_PORT`` ...) that every mail-sending program understands."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, BaseModel, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


class WebhookTarget(BaseModel):
    """Where an organisation's own system (or a chat channel) receives the news about its ideas."""

    url: str = Field(description="HTTP(S) URL that receives a POST of JSON per notification")
    secret: SecretStr = Field(description="Shared secret of the HMAC-SHA256 signature (X-Kiruna-Signature)")


class NotificationsSettings(ServiceSettings):
    """Notifications' own settings; environment names start with ``NOTIFICATIONS_`` unless an alias says."""

    model_config = SettingsConfigDict(env_prefix="NOTIFICATIONS_", extra="ignore", populate_by_name=True)

    port: int = 8002
    group_id: str = "notifications"
    feed_length: int = Field(500, ge=1, description="Items kept in each person's in-app feed")
    public_url: str = Field(
        "http://127.0.0.1:8002", description="Where this service is reached from outside (unsubscribe links)"
    )
    unsubscribe_secret: SecretStr = Field(
        SecretStr("local-development-only"), description="Signs the one-click unsubscribe links; set it in production"
    )
    unsubscribe_token_days: int = Field(
        60, ge=1, description="How long the unsubscribe link of an e-mail works (days from when it was sent)"
    )
    templates_dir: Path = Field(TEMPLATES_DIR, description="Jinja2 templates, one folder per language")
    timezone: str = Field("Europe/Stockholm", description="Time zone of working days and digests")

    # e-mail (aiosmtplib); the local default is the mail sink of `make run`
    smtp_host: str = Field("127.0.0.1", validation_alias="SMTP_HOST")
    smtp_port: int = Field(1025, validation_alias="SMTP_PORT")
    smtp_starttls: bool = Field(False, validation_alias="SMTP_STARTTLS", description="Upgrade with STARTTLS")
    smtp_tls: bool = Field(False, validation_alias="SMTP_TLS", description="Implicit TLS (usually port 465)")
    smtp_username: str | None = Field(None, validation_alias="SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(None, validation_alias="SMTP_PASSWORD")
    smtp_from: str = Field("Kiruna innovationsplattform <innovation@kiruna.se>", validation_alias="SMTP_FROM")
    smtp_timeout_s: float = Field(10.0, gt=0, validation_alias="SMTP_TIMEOUT_S")

    # webhooks per organisation, JSON: {"tekniska-verken": {"url": "https://...", "secret": "..."}}
    webhooks: dict[str, WebhookTarget] = Field(default_factory=dict)
    webhook_timeout_s: float = Field(10.0, gt=0)

    # deliveries: a Redis retry queue worked by a background task
    delivery_attempts: int = Field(8, ge=1, description="Tries of one e-mail or webhook before notifications.dlq")
    retry_base_s: float = Field(5.0, ge=0, description="First retry delay; doubles each try, with jitter")
    retry_max_s: float = Field(900.0, ge=0, description="Longest delay between two tries")
    delivery_concurrency: int = Field(8, ge=1, description="Deliveries in flight at once")
    delivery_lease_s: float = Field(120.0, gt=0, description="A claimed delivery comes back after this if unfinished")
    delivery_poll_s: float = Field(1.0, gt=0, description="How often the retry queue is looked at")

    # Effect keys (delivered, given-up, digest-sent and "already handled" marks) expire after EFFECT_KEY_TTL_S
    # (shared/settings.py, 30 days: beyond any redelivery; the retry queue gives up within about two hours at the
    # defaults, a digest goes out for yesterday). Feeds, preferences and idea facts are state and do not expire.

    # live streams (server-sent events): one Redis subscription per process, fanned out in-process (live.py)
    streams_per_person: int = Field(5, ge=1, description="Open live streams one person may have (tabs, devices)")
    streams_max: int = Field(1000, ge=1, description="Open live streams of this process in all")
    stream_queue: int = Field(100, ge=1, description="Items waiting for one stream before its slow client is dropped")
    stream_ping_s: float = Field(15.0, gt=0, description="Heartbeat (an SSE comment) on a quiet stream")
    stream_send_timeout_s: float = Field(30.0, gt=0, description="A client that takes no bytes this long is dropped")

    # response-time targets and digests
    deadline_check_interval_s: float = Field(900.0, gt=0, description="How often open ideas are checked")
    deadline_warning_working_days: int = Field(1, ge=0, description="Warn this many working days before the target")
    challenge_reminder_days: int = Field(
        7,
        ge=0,
        validation_alias=AliasChoices(
            "challenge_reminder_days", "NOTIFICATIONS_CHALLENGE_REMINDER_DAYS", "CHALLENGE_REMINDER_DAYS"
        ),
        description="Remind a challenge's audience this many days before it closes (0: no reminder)",
    )
    digest_hour: int = Field(7, ge=0, le=23, description="Local hour after which yesterday's digest is sent")
