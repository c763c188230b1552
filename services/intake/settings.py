from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    """Intake's own settings; environment names start with ``INTAKE_``."""

    model_config = SettingsConfigDict(env_prefix="INTAKE_", extra="ignore", populate_by_name=True)

    port: int = 8000
    group_id: str = "intake"
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Worker processes serving the one HTTP port (and SMTP door, SO_REUSEPORT), each a member of "
        "intake's consumer groups; above 1, /metrics merges them (PROMETHEUS_MULTIPROC_DIR, shared/runner.py)",
    )
    # Who may submit: people are identified by the OpenID Connect provider (OIDC_* settings, shared/oidc.py)
    anonymous_without_sign_in: bool = Field(
        True, description="Anonymous ideas from people who are not signed in (rate-limited; nothing personal kept)"
    )
    cors_origins: list[str] = Field(
        ["http://127.0.0.1:8003", "http://localhost:8003"],
        description="Pages allowed to call the API from a browser (the officer inbox)",
    )
    # Limits
    max_body_bytes: int = Field(64 * 1024, description="Largest request body accepted")
    rate_limit_per_minute: int = Field(60, ge=1, description="Writes per client per minute")
    # Every "effect key" intake keeps in Redis expires, and outlives any redelivery of what it guards: an
    # Idempotency-Key's record (and its idea's pointer) lives 7 days, longer than a mail server retries a message
    # (Postfix: 5 days) and far longer than a client's retries; the mail rate counters live one window + 1 s
    # (services/intake/store.py states the others: supporters, the HTTP rate counters).
    idempotency_ttl_s: int = Field(
        7 * 24 * 3600,
        ge=3600,
        description="How long an Idempotency-Key (and a mail's Message-ID) is remembered; longer than any retry",
    )
    mail_per_sender_per_hour: int = Field(
        30, ge=1, description="Mails one envelope sender (MAIL FROM, any case) may send per hour; then 451 4.7.1"
    )
    mail_per_connection: int = Field(
        10, ge=1, description="Mails one SMTP connection may carry; the next MAIL gets 421 and the connection ends"
    )
    # E-mail in
    smtp_enabled: bool = True
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    idea_address: str = Field("ideas@localhost", description="Mail to this address becomes an idea")
    mail_authserv_id: str = Field(
        "",
        description="authserv-id of the mail server that relays to intake: only its Authentication-Results "
        "headers are read; empty reads every one",
    )
    # The people's export (GET /api/v1/people/me/export): the event log read from its beginning, bounded
    export_timeout_s: float = Field(
        60.0, gt=0, description="Longest an export may read the event log; then 503 with Retry-After"
    )
    exports_at_once: int = Field(2, ge=1, description="Exports read at the same time by one intake (the others wait)")
    # Web form
    form_secret: SecretStr = Field(SecretStr("local-form-secret-change-me!"), description="Signs CSRF tokens")
