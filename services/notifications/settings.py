from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class NotificationsSettings(ServiceSettings):
    """Notifications' own settings; environment names start with ``NOTIFICATIONS_``."""

    model_config = SettingsConfigDict(env_prefix="NOTIFICATIONS_", extra="ignore", populate_by_name=True)

    port: int = 8002
    group_id: str = "notifications"
    feed_length: int = 500
