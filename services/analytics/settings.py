from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class AnalyticsSettings(ServiceSettings):
    """Analytics' own settings; environment names start with ``ANALYTICS_``."""

    model_config = SettingsConfigDict(env_prefix="ANALYTICS_", extra="ignore", populate_by_name=True)

    port: int = 8003
    group_id: str = "analytics"
