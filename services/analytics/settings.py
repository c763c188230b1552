from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class AnalyticsSettings(ServiceSettings):
    """Analytics' own settings; environment names start with ``ANALYTICS_``."""

    model_config = SettingsConfigDict(env_prefix="ANALYTICS_", extra="ignore", populate_by_name=True)

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
