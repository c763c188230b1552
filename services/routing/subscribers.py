"""Every subscription of routing, in one place. Given ``transactions``, what a consumed batch (or command)
publishes is committed with its offsets in one Kafka transaction (shared/transactions.py)."""

import contextlib

from faststream.kafka.annotations import KafkaMessage

from services.routing.handlers import RoutingHandlers
from shared.batch import subscribe_batch
from shared.events import EditedEvent, ErasureRequestedEvent, RerouteCommand, SubmittedEvent
from shared.kafka import subscribe, subscriber_options
from shared.service import Runtime
from shared.transactions import Transactions


def register(runtime: Runtime, handlers: RoutingHandlers, transactions: Transactions | None = None) -> None:
    topics = runtime.topics
    group = runtime.settings.group_id

    subscribe_batch(
        runtime,
        topics.submitted,
        SubmittedEvent,
        title="routing.submitted",
        description="Routes every new idea to the organisations and areas that can act on it",
        per_batch=handlers.submitted_batch,
        transactions=transactions,
    )

    subscribe_batch(
        runtime,
        topics.edited,
        EditedEvent,
        title="routing.edited",
        description="The submitter corrected an idea before it was acknowledged: routes the new text again",
        each=handlers.edited,
        transactions=transactions,
    )

    @subscribe(
        runtime.broker,
        group,
        topics.routing_commands,
        title="routing.commands",
        description="RerouteIdea from the innovation office: replaces the routing and teaches the router "
        "(one command at a time, in order: the router learns from each)",
    )
    async def on_reroute(command: RerouteCommand, message: KafkaMessage) -> None:
        if transactions is None:
            scope = contextlib.nullcontext()
        else:
            commands_group = subscriber_options(group, topics.routing_commands)["group_id"]
            scope = transactions.batch([message.raw_message], commands_group, message.consumer)
        async with scope:
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
