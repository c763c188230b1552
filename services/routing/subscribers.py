"""Every subscription of routing, in one place."""

from services.routing.handlers import RoutingHandlers
from shared.events import SubmittedEvent
from shared.kafka import subscribe
from shared.service import Runtime


def register(runtime: Runtime, handlers: RoutingHandlers) -> None:
    topics = runtime.topics
    group = runtime.settings.group_id

    @subscribe(
        runtime.broker,
        group,
        topics.submitted,
        title="routing.submitted",
        description="Routes every new idea to the organisations and areas that can act on it",
    )
    async def on_submitted(event: SubmittedEvent) -> None:
        await handlers.submitted(event)
