"""Every subscription of routing, in one place."""

from services.routing.handlers import RoutingHandlers
from shared.events import RerouteCommand, SubmittedEvent
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

    @subscribe(
        runtime.broker,
        group,
        topics.routing_commands,
        title="routing.commands",
        description="RerouteIdea from the innovation office: replaces the routing and teaches the router",
    )
    async def on_reroute(command: RerouteCommand) -> None:
        await handlers.reroute(command)
