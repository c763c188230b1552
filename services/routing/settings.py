import socket

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
    instance: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        description="This instance's name, stable across its restarts and unique among replicas (a StatefulSet "
        "pod's name, routing-1 ...; the host's name by default). Its Kafka transactional.id is "
        "<group_id>-<instance>: a restart fences the killed process and completes what it left open",
    )
    transaction_timeout_s: float = Field(
        20.0,
        ge=1,
        le=900,
        description="How long a transaction left open by a killed instance that does not come back (under the "
        "same name) holds back the readers of ideas.routed and the organisations' topics before Kafka aborts it",
    )

    @property
    def transactional_id(self) -> str:
        return f"{self.group_id}-{self.instance}"
