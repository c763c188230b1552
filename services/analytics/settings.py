from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class AnalyticsSettings(ServiceSettings):
    """Analytics' own settings; environment names start with ``ANALYTICS_``."""

    model_config = SettingsConfigDict(env_prefix="ANALYTICS_", extra="ignore", populate_by_name=True)

    # Effect keys: none. EFFECT_KEY_TTL_S (shared/settings.py, 30 days) does not apply here: analytics' guard
    # against a redelivered event is its events hash, which is also the timeline, so every analytics key is
    # projection (rebuildable by `python -m services.analytics.rebuild`) and keeps no TTL.
    port: int = 8003
    group_id: str = "analytics"
    intake_url: str = Field(
        "",
        description="Intake's base URL as the officer's browser reaches it (the inbox's actions call it); empty: "
        "the same site (behind the proxy), with the session cookie. Set it only for a split deployment.",
    )
    timezone: str = Field("Europe/Stockholm", description="Local time zone of dates, months and working days")
    metrics_interval_s: float = Field(
        15.0, gt=0, description="How often the business gauges (ideas by state, targets missed, lag) are refreshed"
    )
    figures_cache_s: float = Field(
        10.0,
        ge=0,
        description="How long a computed figure (per figure and filters) may be served again while no idea has "
        "changed; 0: computed on every request",
    )
    index_sync_interval_s: float = Field(
        1.0,
        gt=0,
        description="How often each replica's in-memory indexes of the ideas' text (search, similar ideas) catch up "
        "with the projection between requests (every request catches up first anyway)",
    )
    synonyms_path: Path | None = Field(
        None, description="The similar-ideas engine's synonyms (default: catalogue/synonyms.toml)"
    )
    figures_cache_scopes: int = Field(
        256, ge=1, description="Figures (figure and filters) kept in that cache at most, least recently used out"
    )
