from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class RoutingSettings(ServiceSettings):
    """Routing's own settings; environment names start with ``ROUTING_``."""

    model_config = SettingsConfigDict(env_prefix="ROUTING_", extra="ignore", populate_by_name=True)

    port: int = 8001
    group_id: str = "routing"
    feedback_refresh_interval_s: float = Field(
        30.0, gt=0, description="How often re-routes learnt by other replicas are picked up"
    )
