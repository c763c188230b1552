"""Every subscription of routing, in one place."""

from services.routing.handlers import RoutingHandlers
from shared.batch import subscribe_batch
from shared.events import ErasureRequestedEvent, RerouteCommand, SubmittedEvent
from shared.kafka import subscribe
from shared.service import Runtime


def register(runtime: Runtime, handlers: RoutingHandlers) -> None:
    topics = runtime.topics
    group = runtime.settings.group_id

    subscribe_batch(
        runtime,
        topics.submitted,
        SubmittedEvent,
        title="routing.submitted",
        description="Routes every new idea to the organisations and areas that can act on it",
        each=handlers.submitted,
    )

    @subscribe(
        runtime.broker,
        group,
        topics.routing_commands,
        title="routing.commands",
        description="RerouteIdea from the innovation office: replaces the routing and teaches the router "
        "(one command at a time, in order: the router learns from each)",
    )
    async def on_reroute(command: RerouteCommand) -> None:
        await handlers.reroute(command)

    @subscribe(
        runtime.broker,
        group,
        topics.people_erasures,
        title="routing.people-erasures",
        description="A person asked to be forgotten: routing holds nothing about people (it reads an idea's title "
        "and text, never its submitter), so it only acknowledges the request in its own consumer group",
    )
    async def on_erasure(event: ErasureRequestedEvent) -> None:
        await handlers.erased(event)
