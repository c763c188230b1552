"""Load the demo history into a running platform (``make demo``, ``python -m demo``).

Through the platform's real doors:

- the most recent open ideas go through intake's JSON API now, with real tokens of the realm's employees (anna.svensson,
  per.niemi), and are supported there by the other one;
- everything that happened in the past is published to Kafka as the services would have published it then: the same
  contracts (``shared/events.py``), the people sealed under their own data keys by the platform's keyring (as intake
  seals them), routing's decision from routing's own classifier with the id routing derives (so routing's own
  reaction to the submission is the same event, dropped downstream as a repeat), to ``ideas.routed.v1`` and each
  organisation's topic.

Demo events are marked: their ``source`` is under ``/demo`` and their Kafka record carries the header
``demo: true``; their ids are in the demo namespace (``demo.plan.demo_id``). Before publishing, the loader reads the
demo events already in the topics and publishes only those that are missing: a second run loads nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis
from tqdm import tqdm

from demo.plan import SOURCE_PREFIX, DemoPerson, IdeaPlan, Step, demo_id
from services.intake.domain import ID_PREFIX, intake_id
from services.intake.settings import IntakeSettings
from shared.catalogue import load_catalogue
from shared.events import (
    Contract,
    EngagementKind,
    Envelope,
    IdeaEngagement,
    IdeaRouted,
    IdeaStatusChanged,
    IdeaSubmitted,
)
from shared.kafka import client_options, event_headers
from shared.keyring import Keyring
from shared.replay import read_batches
from shared.topics import Topics

DEMO_HEADER = ("demo", b"true")
INTAKE_SOURCE = f"{SOURCE_PREFIX}/services/intake"
ROUTING_SOURCE = f"{SOURCE_PREFIX}/services/routing"
API_SUBMITTERS = (("anna.svensson", "anna.svensson@kiruna.se"), ("per.niemi", "per.niemi@kirunabostader.se"))


class PlatformNotRunning(RuntimeError):
    """What is not answering, and what to do about it."""


@dataclass
class Summary:
    ideas: int = 0
    published: int = 0
    already: int = 0
    api_ideas: int = 0
    api_already: int = 0

    def line(self) -> str:
        return (
            f"demo: ideas={self.ideas} events_published={self.published} events_already_there={self.already} "
            f"api_ideas={self.api_ideas} api_ideas_already_there={self.api_already}"
        )


class DemoLoader:
    """Publishes a plan's events (those not yet in Kafka) and sends its API ideas through ``intake`` (an HTTP
    client of intake's API) with tokens from ``token(username)``."""

    def __init__(
        self,
        settings: IntakeSettings,
        *,
        intake: httpx.AsyncClient,
        token: Callable[[str], str],
        progress: bool = True,
    ) -> None:
        self.settings = settings
        self.catalogue = load_catalogue(settings.catalogue_path)
        self.topics = Topics(settings.kafka.topic_prefix)
        self.intake = intake
        self.token = token
        self.progress = progress
        self.redis = Redis.from_url(settings.redis_url)
        self.keyring = Keyring.from_settings(self.redis, settings, self.topics.people_keys)
        self.producer: AIOKafkaProducer | None = None

    async def close(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
        await self.keyring.close()
        await self.redis.aclose()

    async def load(self, plans: list[IdeaPlan]) -> Summary:
        await self.keyring.check()
        existing, titles = await self.existing()
        self.producer = AIOKafkaProducer(
            **client_options(self.settings.kafka), acks="all", enable_idempotence=True, linger_ms=5
        )
        await self.producer.start()
        summary = Summary(ideas=len(plans))
        past = [p for p in plans if not p.through_api]
        total = sum(len(p.steps) for p in past) + sum(1 for p in plans if p.through_api)
        with tqdm(
            total=total, desc="loading the demo history", unit="event", file=sys.stderr, disable=not self.progress
        ) as bar:
            for plan in past:
                for envelope, topics in await self.envelopes(plan):
                    if envelope.id in existing:
                        summary.already += 1
                    else:
                        await self.publish(envelope, topics)
                        existing.add(envelope.id)
                        summary.published += 1
                    bar.update(1)
            for n, plan in enumerate(p for p in plans if p.through_api):
                if plan.title in titles:
                    summary.api_already += 1
                else:
                    await self.submit_through_api(plan, n)
                    summary.api_ideas += 1
                bar.update(1)
        return summary

    async def existing(self) -> tuple[set[str], set[str]]:
        """The ids of the demo events already in the topics, and the titles of every idea submitted."""
        ids: set[str] = set()
        titles: set[str] = set()
        topics = [self.topics.submitted, self.topics.routed, self.topics.status_changed, self.topics.engagement]
        async for batch in read_batches(
            self.settings.kafka, topics, label="reading what is there", progress=self.progress
        ):
            for record in batch:
                headers = dict(record.headers or ())
                if record.topic == self.topics.submitted and record.value:
                    try:
                        titles.add(json.loads(record.value)["data"]["title"])
                    except (ValueError, KeyError, TypeError):
                        pass
                if headers.get(DEMO_HEADER[0]) == DEMO_HEADER[1] and "ce_id" in headers:
                    ids.add(headers["ce_id"].decode())
        return ids, titles

    async def publish(self, envelope: Envelope[Any], topics: tuple[str, ...]) -> None:
        assert self.producer is not None
        headers = [(k, v.encode()) for k, v in event_headers(envelope).items()] + [DEMO_HEADER]
        key = envelope.subject.encode()
        await asyncio.gather(
            *(self.producer.send_and_wait(t, envelope.to_bytes(), key=key, headers=headers) for t in topics)
        )

    async def _person(self, person: DemoPerson, at: datetime):
        return await self.keyring.person_ref(
            person.email, person.name, organisation=person.organisation, unit=person.unit, since=at
        )

    async def envelopes(self, plan: IdeaPlan) -> list[tuple[Envelope[Any], tuple[str, ...]]]:
        """The idea's events, as the services would have published them, with the topics each goes to. The routed
        event comes first: routing's own reaction to the submission (the same id) then always arrives after it."""
        out: list[tuple[Envelope[Any], tuple[str, ...]]] = []
        submitted_id = next(s.event_id for s in plan.steps if s.kind == "submitted")
        for step in plan.steps:
            if step.kind == "submitted":
                continue
            if step.kind == "routed":
                out.append((self._routed(plan, step, submitted_id), self._routed_topics(plan)))
                out.append(await self._submitted(plan))
            else:
                out.append(await self._step(plan, step, submitted_id))
        return out

    async def _submitted(self, plan: IdeaPlan) -> tuple[Envelope[Any], tuple[str, ...]]:
        step = plan.steps[0]
        ref = (await self._person(plan.submitter, step.time))[0] if plan.submitter is not None else None
        data = IdeaSubmitted(
            idea_id=plan.idea_id,
            title=plan.title,
            description=plan.text,
            language=plan.language,  # type: ignore[arg-type]
            anonymous=plan.submitter is None,
            submitter=ref,
            channel="web",
        )
        return self._wrap(data, INTAKE_SOURCE, step, correlation=step.event_id), (self.topics.submitted,)

    def _routed(self, plan: IdeaPlan, step: Step, submitted_id: str) -> Envelope[Any]:
        decision: Any = plan.routing
        organisations = decision.organisations
        data = IdeaRouted(
            idea_id=plan.idea_id,
            title=plan.title,
            organisations=organisations,
            areas=decision.areas,
            reason=decision.reason,
            triage=decision.triage,
            catalogue_version=decision.catalogue_version,
        )
        return self._wrap(data, ROUTING_SOURCE, step, correlation=submitted_id)

    def _routed_topics(self, plan: IdeaPlan) -> tuple[str, ...]:
        decision: Any = plan.routing
        orgs = dict.fromkeys(self.topics.organisation(t.organisation) for t in decision.organisations)
        return (self.topics.routed, *orgs)

    async def _step(self, plan: IdeaPlan, step: Step, submitted_id: str) -> tuple[Envelope[Any], tuple[str, ...]]:
        if step.kind == "status":
            assert step.to_state is not None
            changed_by = step.actor
            if isinstance(changed_by, DemoPerson):  # the submitter withdrew it: named by their pseudonym
                changed_by = self.keyring.pseudonym(changed_by.email)
            data: Contract = IdeaStatusChanged(
                idea_id=plan.idea_id,
                from_state=step.from_state,
                to_state=step.to_state,
                reason=step.text,
                changed_by=str(changed_by),
                organisation=step.organisation,
            )
            return self._wrap(data, INTAKE_SOURCE, step), (self.topics.status_changed,)
        person = step.actor if isinstance(step.actor, DemoPerson) else self._officer(str(step.actor))
        ref, key = await self._person(person, step.time)
        if step.kind == "support":
            data = IdeaEngagement(idea_id=plan.idea_id, kind=EngagementKind.SUPPORT, person=ref)
            event_id = intake_id(ID_PREFIX, "support", plan.idea_id, ref.pseudonym)  # intake's: one per person
            return self._wrap(data, INTAKE_SOURCE, step, event_id=event_id), (self.topics.engagement,)
        official = step.organisation if not isinstance(step.actor, DemoPerson) else None
        data = IdeaEngagement(
            idea_id=plan.idea_id,
            kind=EngagementKind.COMMENT,
            person=ref,
            text=key.seal(step.text or ""),
            official=official,
        )
        return self._wrap(data, INTAKE_SOURCE, step), (self.topics.engagement,)

    def _officer(self, officer_id: str) -> DemoPerson:
        found = next((o for o in self.catalogue.officers if o.id == officer_id), None)
        if found is None:
            raise ValueError(f"demo: officer {officer_id} is not in the catalogue")
        return DemoPerson(found.name, found.email, found.organisation, found.unit or "")

    @staticmethod
    def _wrap(
        data: Contract, source: str, step: Step, *, event_id: str | None = None, correlation: str | None = None
    ) -> Envelope[Any]:
        return Envelope.wrap(
            data, source=source, event_id=event_id or step.event_id, time=step.time, correlation_id=correlation
        )

    async def submit_through_api(self, plan: IdeaPlan, n: int) -> str:
        """Send the idea as one of the realm's employees would (their token), then support it as the other."""
        author, supporter = API_SUBMITTERS[n % 2], API_SUBMITTERS[(n + 1) % 2]
        answer = await self.intake.post(
            "/api/v1/ideas",
            json={"title": plan.title, "description": plan.text},
            headers={"Authorization": f"Bearer {self.token(author[0])}", "Idempotency-Key": demo_id(plan.idea_id)},
        )
        if answer.status_code != 202:
            raise PlatformNotRunning(f"intake refused the idea '{plan.title}': {answer.status_code} {answer.text}")
        idea_id = answer.json()["idea_id"]
        support = await self.intake.post(
            f"/api/v1/ideas/{idea_id}/support", headers={"Authorization": f"Bearer {self.token(supporter[0])}"}
        )
        if support.status_code >= 300:
            refused = f"{support.status_code} {support.text}"
            raise PlatformNotRunning(f"intake refused a support of '{plan.title}': {refused}")
        return idea_id
