from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    """Intake's own settings; environment names start with ``INTAKE_``."""

    model_config = SettingsConfigDict(env_prefix="INTAKE_", extra="ignore", populate_by_name=True)

    port: int = 8000
    group_id: str = "intake"
    retry_after_s: int = Field(5, description="Retry-After sent with 503 when Kafka is unavailable")
