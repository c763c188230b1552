"""Intake's use cases. Every door (JSON API, web form, e-mail, the raw Kafka topic) calls these; each one
records its event in Kafka and returns only after Kafka has acknowledged it.

Intake seals at its doors: every person an event names (a named idea's submitter; whoever comments, supports or
follows) is a :class:`shared.events.PersonRef` - their pseudonym in the clear, their address and name sealed under
their data key - and a comment's text is sealed under the same key. Nothing personal leaves intake unsealed, and
intake keeps a person in Redis by their pseudonym only."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from services.intake.challenges import answering, challenge_of, check_answerable
from services.intake.domain import ID_PREFIX, Person, detect_language, intake_id, submitted_event, submitter_of
from services.intake.errors import Conflict, Forbidden, InvalidField, NotFound
from services.intake.lifecycle import check_transition
from services.intake.models import (
    AssignmentIn,
    ChallengeAccepted,
    ChallengeIn,
    CommentIn,
    EditIn,
    IdeaAccepted,
    IdeaIn,
    RerouteIn,
    StatusChangeIn,
    WithdrawIn,
)
from services.intake.rules import (
    assignment_of,
    check_editable,
    check_submitter,
    check_withdrawable,
    official_of,
)
from services.intake.store import ANONYMOUS, IdeaRecord, IdempotencyMismatch, IntakeStore, iso
from shared.catalogue import Catalogue
from shared.events import (
    AreaMatch,
    ChallengeOpened,
    Contract,
    EngagementKind,
    Envelope,
    IdeaAssigned,
    IdeaEdited,
    IdeaEngagement,
    IdeaState,
    IdeaStatusChanged,
    PersonRef,
    RerouteIdea,
    RoutingTarget,
    utc_now,
)
from shared.principal import Principal
from shared.publishing import Publisher
from shared.sealing import DataKey
from shared.topics import Topics

SOURCE = "/services/intake"


class PeopleKeys(Protocol):
    """What intake uses of the people's keyring: ``shared/keyring.py`` (``runtime.keyring``), or the unit tests'
    ``tests/fakes/common.py FakeKeyring``."""

    def pseudonym(self, person: str) -> str: ...

    async def person_ref(
        self, email: str, name: str | None, *, organisation: str | None = None, unit: str | None = None
    ) -> tuple[PersonRef, DataKey]: ...

    async def key(self, key_id: str) -> DataKey | None: ...

    async def current(self, pseudonym_: str) -> DataKey | None: ...

    async def erase(self, pseudonym_: str) -> bool: ...

    def forget_cached(self, pseudonym_: str) -> None: ...


class Intake:
    """Intake's use cases over narrow ports: a publisher (Kafka, acks=all), intake's store, the catalogue in use
    (kept current by the factory), the people's keyring (to seal who acts), the topic names and a clock. Tests
    give it in-memory fakes (tests/fakes)."""

    def __init__(
        self,
        publisher: Publisher,
        store: IntakeStore,
        catalogue: Catalogue,
        keyring: PeopleKeys,
        *,
        topics: Topics,
        public_base_url: str,
        idempotency_ttl_s: int,
        pending_lease_s: float = 10.0,
        clock: Callable[[], datetime] = utc_now,
        logger: logging.Logger | None = None,
    ) -> None:
        self.publisher = publisher
        self.store = store
        self.catalogue = catalogue
        self.keyring = keyring
        self.topics = topics
        self.public_base_url = public_base_url
        self.idempotency_ttl_s = idempotency_ttl_s
        self.pending_lease_s = pending_lease_s
        self.clock = clock
        self.logger = logger or logging.getLogger("intake")

    def _wrap(self, payload: Contract, *, event_id: str | None = None, correlation_id: str | None = None) -> Envelope:
        return Envelope.wrap(
            payload, source=SOURCE, event_id=event_id, correlation_id=correlation_id, time=self.clock()
        )

    def check_hints(self, idea: IdeaIn) -> None:
        """Hints must name areas and organisations of the catalogue."""
        areas = {a.id for a in self.catalogue.areas}
        for i, hint in enumerate(idea.area_hints):
            if hint not in areas:
                raise InvalidField(f"area_hints.{i}", f"unknown area '{hint}'; known: {', '.join(sorted(areas))}")
        orgs = set(self.catalogue.organisation_ids)
        for i, hint in enumerate(idea.organisation_hints):
            if hint not in orgs:
                known = ", ".join(sorted(orgs))
                raise InvalidField(f"organisation_hints.{i}", f"unknown organisation '{hint}'; known: {known}")

    # --- new ideas ------------------------------------------------------------------------------------------

    async def submit(
        self,
        idea: IdeaIn,
        *,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
        principal: Principal | None = None,
    ) -> IdeaAccepted:
        """Publish a new idea and answer once Kafka has it.

        An Idempotency-Key is the sender's (``principal``, by their pseudonym; one scope for everyone not signed
        in) and is bound to the request: the same key with another body is refused (:class:`IdempotencyMismatch`,
        422). The idea id is a fresh uuid4 recorded with the key's reservation, never derived from the key alone:
        a key reused after its record expired (or after Redis was lost) makes a new idea with a new id, where a
        derived id would be dropped by every consumer as a duplicate. The price is honest: a retry after Redis lost
        the record may make a second idea; it can never make a silently dropped one. While an attempt holds the
        key's short lease (``pending_lease_s``, 2 x the Kafka publish timeout) a retry is refused at once
        (:class:`IdempotencyPending`, 409 with Retry-After); an attempt that failed or crashed leaves the record
        with its idea id, so the retry publishes the same idea and event ids again (consumers drop a repeat by
        event id).

        Nothing personal reaches Redis: the scope is the sender's pseudonym, the fingerprint a hash of the idea
        without its submitter and of the submitter's pseudonym; a named idea's record is indexed under the
        submitter's pseudonym, so that their erasure forgets it."""
        self.check_hints(idea)
        submitter = submitter_of(idea)
        if idempotency_key is None:
            answer = await self.answering_challenge(idea)
            return await self._submit(answer, submitter, str(uuid.uuid4()), correlation_id)
        owner = self._scope(principal)
        named = self.keyring.pseudonym(submitter.email) if submitter is not None else None
        scoped_key = f"{owner}\n{idempotency_key}"
        # (an idea answering no challenge has the fingerprint it had before ideas could answer one)
        unsaid = {"submitter"} if idea.challenge_id else {"submitter", "challenge_id"}
        request = f"{owner}\n{named or '-'}\n{idea.model_dump_json(exclude=unsaid)}"
        if submitter is not None:
            request += f"\n{submitter.organisation or '-'}\n{submitter.unit or '-'}"
        fingerprint = hashlib.sha256(request.encode()).hexdigest()
        offer = self._accepted(str(uuid.uuid4()))
        reservation = await self.store.reserve(
            scoped_key,
            fingerprint,
            self.idempotency_ttl_s,
            answer=offer.model_dump(),
            lease_s=self.pending_lease_s,
            person=named,
        )
        accepted = IdeaAccepted.model_validate(reservation.answer)
        if not reservation.first:
            return accepted
        try:
            answer = await self.answering_challenge(idea)
            await self._submit(answer, submitter, accepted.idea_id, correlation_id, event_id=accepted.event_id)
        except BaseException:
            with contextlib.suppress(Exception):  # else the lease runs out by itself
                await self.store.release(scoped_key)
            raise
        try:
            await self.store.complete(scoped_key)
        except Exception as exc:  # Kafka has the idea: the record is a cache, which the follower settles
            self._cache_failed(accepted, exc)
        return accepted

    async def answered(self, idempotency_key: str, principal: Principal | None) -> bool:
        """Whether a request under this Idempotency-Key (of this sender) was already made."""
        return await self.store.reserved(f"{self._scope(principal)}\n{idempotency_key}")

    def _scope(self, principal: Principal | None) -> str:
        """Whose Idempotency-Keys these are: the principal's pseudonym (of their address; of their user id when
        their sign-in carries no address), "-" for everyone not signed in."""
        if principal is None:
            return "-"
        return self.keyring.pseudonym(principal.email or f"id:{principal.id}")

    async def submit_from_topic(self, idea: IdeaIn, idea_id: str) -> IdeaAccepted:
        """An idea from the raw topic: its id (and so its event id) derives from its position in the topic. A named
        idea without the submitter's address is refused (:class:`InvalidField` ``submitter.email``)."""
        self.check_hints(idea)
        submitter = submitter_of(idea)
        idea = await self.answering_challenge(idea)
        channel_idea = idea if "channel" in idea.model_fields_set else idea.model_copy(update={"channel": "kafka"})
        return await self._submit(channel_idea, submitter, idea_id, None, event_id=intake_id(idea_id, "submitted"))

    async def answering_challenge(self, idea: IdeaIn) -> IdeaIn:
        """The idea with its challenge's hints; refuses an unknown challenge (422) or a closed one (409)."""
        if idea.challenge_id is None:
            return idea
        found = await self.store.challenge(idea.challenge_id)
        return answering(idea, check_answerable(found, idea.challenge_id, self.clock()))

    def _accepted(self, idea_id: str) -> IdeaAccepted:
        return IdeaAccepted(
            idea_id=idea_id,
            event_id=intake_id(idea_id, "submitted"),
            status_url=f"{self.public_base_url}/ideas/{idea_id}",
        )

    def _cache_failed(self, accepted: IdeaAccepted, exc: Exception) -> None:
        self.logger.warning(
            "idea stored in Kafka but not recorded in Redis; answered anyway, the follower records it from the topic",
            extra={"idea_id": accepted.idea_id, "event_id": accepted.event_id, "error": repr(exc)},
        )

    async def _person(self, person: Person) -> tuple[PersonRef, DataKey]:
        """The person as an event names them (sealed under their key, made and recorded in Kafka if new)."""
        return await self.keyring.person_ref(
            person.email, person.name, organisation=person.organisation, unit=person.unit
        )

    async def _submit(
        self,
        idea: IdeaIn,
        submitter: Person | None,
        idea_id: str,
        correlation_id: str | None,
        event_id: str | None = None,
    ) -> IdeaAccepted:
        ref = (await self._person(submitter))[0] if submitter is not None else None
        envelope = self._wrap(submitted_event(idea, idea_id, ref), event_id=event_id, correlation_id=correlation_id)
        await self.publisher.publish(self.topics.submitted, envelope)
        accepted = self._accepted(idea_id).model_copy(update={"event_id": envelope.id})
        # Kafka has acknowledged the idea: from here on the answer is 202. Intake's record of it is a cache of
        # the topic (the follower writes the same record), so a failing Redis costs a warning, not a lie.
        try:
            await self.store.record_submitted(
                idea_id,
                iso(envelope.time),
                title=idea.title,
                description=idea.description,
                submitter=ref.pseudonym if ref is not None else ANONYMOUS,
                challenge_id=idea.challenge_id,
            )
        except Exception as exc:
            self._cache_failed(accepted, exc)
        self.logger.info(
            "idea submitted",
            extra={
                "idea_id": idea_id,
                "event_id": envelope.id,
                "channel": idea.channel,
                "correlation_id": correlation_id,
            },
        )
        return accepted

    # --- officers' actions ----------------------------------------------------------------------------------

    async def _idea_for(self, officer: Principal, idea_id: str):
        record = await self.store.idea(idea_id)
        if record is None:
            raise NotFound(f"no idea with id {idea_id}")
        if not officer.may_act_on(set(record.organisations)):
            owners = ", ".join(sorted(record.organisations)) or "no organisation yet"
            if not officer.is_officer:
                raise Forbidden(
                    f"changing an idea's state needs the role officer (of {owners}), innovation-office or admin"
                )
            raise Forbidden(f"the idea is routed to {owners}; an officer of {officer.organisation} may not change it")
        return record

    async def change_status(
        self, officer: Principal, idea_id: str, change: StatusChangeIn, correlation_id: str | None = None
    ) -> str:
        record = await self._idea_for(officer, idea_id)
        check_transition(
            record.state, change.to_state, reason=change.reason, merged_into=change.merged_into, idea_id=idea_id
        )
        if change.to_state is IdeaState.MERGED and await self.store.idea(change.merged_into or "") is None:
            raise InvalidField("merged_into", f"no idea with id {change.merged_into}")
        event = IdeaStatusChanged(
            idea_id=idea_id,
            from_state=record.state,
            to_state=change.to_state,
            reason=change.reason,
            changed_by=officer.id,
            organisation=officer.organisation,
            merged_into=change.merged_into,
        )
        return await self._move(record, event, correlation_id)

    async def reroute(
        self, officer: Principal, idea_id: str, request: RerouteIn, correlation_id: str | None = None
    ) -> str:
        if not officer.group_wide:
            raise Forbidden("re-routing an idea needs the role innovation-office or admin")
        if await self.store.idea(idea_id) is None:
            raise NotFound(f"no idea with id {idea_id}")
        for i, target in enumerate(request.organisations):
            org = self.catalogue.organisation(target.organisation)
            if org is None:
                raise InvalidField(f"organisations.{i}.organisation", f"unknown organisation '{target.organisation}'")
            if target.unit and target.unit not in {u.id for u in org.units}:
                raise InvalidField(f"organisations.{i}.unit", f"'{target.unit}' is not a unit of {org.id}")
        areas = {a.id for a in self.catalogue.areas}
        for i, area in enumerate(request.areas):
            if area not in areas:
                raise InvalidField(f"areas.{i}", f"unknown area '{area}'")
        command = RerouteIdea(
            idea_id=idea_id,
            organisations=tuple(RoutingTarget(organisation=t.organisation, unit=t.unit) for t in request.organisations),
            areas=tuple(AreaMatch(area=a) for a in request.areas),
            requested_by=officer.id,
            reason=request.reason,
        )
        envelope = self._wrap(command, correlation_id=correlation_id)
        await self.publisher.publish(self.topics.routing_commands, envelope)
        return envelope.id

    # --- engagement -----------------------------------------------------------------------------------------

    async def _known(self, idea_id: str) -> IdeaRecord:
        record = await self.store.idea(idea_id)
        if record is None:
            raise NotFound(f"no idea with id {idea_id}")
        return record

    async def comment(
        self,
        idea_id: str,
        person: Person,
        comment: CommentIn,
        correlation_id: str | None = None,
        *,
        principal: Principal | None = None,
    ) -> str:
        """Publish a comment: the person sealed, and the text sealed under the same person's key (erasing the key
        erases the comment from the whole history). ``anonymous`` shows it as "anonym"; the comment of an officer
        (``principal``) of one of the idea's organisations is that organisation's answer (``official``)."""
        record = await self._known(idea_id)
        ref, key = await self._person(person)
        official = official_of(principal, record.organisations) if principal is not None else None
        event = IdeaEngagement(
            idea_id=idea_id,
            kind=EngagementKind.COMMENT,
            person=ref,
            text=key.seal(comment.text),
            anonymous=comment.anonymous,
            official=official,
        )
        envelope = self._wrap(event, correlation_id=correlation_id)
        await self.publisher.publish(self.topics.engagement, envelope)
        return envelope.id

    async def support(self, idea_id: str, person: Person, correlation_id: str | None = None) -> str | None:
        """Record one support per person (pseudonym) per idea; None when the person had already supported it."""
        await self._known(idea_id)
        pseudonym = self.keyring.pseudonym(person.email)
        if not await self.store.add_support(idea_id, pseudonym):
            return None
        try:
            ref, _ = await self._person(person)
            event = IdeaEngagement(idea_id=idea_id, kind=EngagementKind.SUPPORT, person=ref)
            # One support per person: the event id derives from (idea, pseudonym), so even a race publishes one id.
            envelope = self._wrap(
                event, event_id=intake_id(ID_PREFIX, "support", idea_id, pseudonym), correlation_id=correlation_id
            )
            await self.publisher.publish(self.topics.engagement, envelope)
        except BaseException:
            await self.store.remove_support(idea_id, pseudonym)
            raise
        return envelope.id

    async def follow(self, idea_id: str, person: Person, correlation_id: str | None = None) -> str:
        """Follow an idea: one event id per (idea, pseudonym), so following twice is heard once downstream."""
        await self._known(idea_id)
        ref, _ = await self._person(person)
        event = IdeaEngagement(idea_id=idea_id, kind=EngagementKind.FOLLOW, person=ref)
        envelope = self._wrap(
            event, event_id=intake_id(ID_PREFIX, "follow", idea_id, ref.pseudonym), correlation_id=correlation_id
        )
        await self.publisher.publish(self.topics.engagement, envelope)
        return envelope.id

    # --- challenges -----------------------------------------------------------------------------------------

    async def open_challenge(
        self,
        principal: Principal,
        request: ChallengeIn,
        *,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> ChallengeAccepted:
        """Publish a new challenge (:func:`services.intake.challenges.challenge_of` says who may, for whom).

        With an ``idempotency_key`` (the web form's submission id, or the API's Idempotency-Key) the challenge's
        id derives from (the principal, the key): the same request again answers the same challenge and publishes
        the same event id (consumers drop the repeat); another request under the same key is refused
        (:class:`IdempotencyMismatch`). A challenge never expires from intake's store, so neither does its key."""
        scope = self._scope(principal)
        challenge_id = (
            intake_id(ID_PREFIX, "challenge", scope, idempotency_key) if idempotency_key else str(uuid.uuid4())
        )
        now = self.clock()
        challenge = challenge_of(request, principal, self.catalogue, challenge_id=challenge_id, now=now)
        if idempotency_key:
            earlier = await self.store.challenge(challenge_id)
            if earlier is not None:
                if _asked(earlier) != _asked(challenge):
                    raise IdempotencyMismatch()
                return self._challenge_accepted(earlier)
        envelope = self._wrap(challenge, event_id=intake_id(challenge_id, "opened"), correlation_id=correlation_id)
        await self.publisher.publish(self.topics.challenges, envelope)
        try:
            await self.store.record_challenge(challenge)
        except Exception as exc:  # Kafka has it: the follower records it from the topic
            self.logger.warning(
                "challenge stored in Kafka but not recorded in Redis; the follower records it from the topic",
                extra={"challenge_id": challenge_id, "error": repr(exc)},
            )
        self.logger.info(
            "challenge opened",
            extra={"challenge_id": challenge_id, "event_id": envelope.id, "organisation": challenge.organisation},
        )
        return self._challenge_accepted(challenge)

    def _challenge_accepted(self, challenge: ChallengeOpened) -> ChallengeAccepted:
        return ChallengeAccepted(
            challenge_id=challenge.challenge_id,
            event_id=intake_id(challenge.challenge_id, "opened"),
            closes_at=challenge.closes_at,
            url=f"{self.public_base_url}/challenges/{challenge.challenge_id}",
        )

    # --- the submitter's own ideas --------------------------------------------------------------------------

    async def _submitters(self, principal: Principal, idea_id: str, action: str) -> tuple[IdeaRecord, str]:
        """The idea, if ``principal`` submitted it (by pseudonym), with that pseudonym."""
        if not principal.email:
            raise Forbidden(f"your sign-in carries no e-mail address, so no idea can be shown to be yours to {action}")
        record = await self._known(idea_id)
        pseudonym = self.keyring.pseudonym(principal.email)
        check_submitter(record, pseudonym, action)
        return record, pseudonym

    async def edit(self, principal: Principal, idea_id: str, change: EditIn, correlation_id: str | None = None) -> str:
        """The submitter corrects the title and description while no officer has acknowledged the idea; routing
        places it anew (it follows ``ideas.edited.v1``), and the history keeps both versions."""
        record, pseudonym = await self._submitters(principal, idea_id, "edit")
        check_editable(record)
        title = change.title if change.title is not None else record.title
        description = change.description if change.description is not None else record.description
        event = IdeaEdited(
            idea_id=idea_id,
            title=title,
            description=description,
            language=detect_language(f"{title} {description}"),
            edited_by=pseudonym,
        )
        envelope = self._wrap(event, correlation_id=correlation_id)
        await self.publisher.publish(self.topics.edited, envelope)
        try:
            await self.store.record_text(idea_id, title, description, iso(envelope.time))
        except Exception as exc:  # Kafka has it: the follower records it from the topic
            self.logger.warning("edit not recorded in Redis", extra={"idea_id": idea_id, "error": repr(exc)})
        self.logger.info("idea edited", extra={"idea_id": idea_id, "event_id": envelope.id})
        return envelope.id

    async def withdraw(
        self, principal: Principal, idea_id: str, request: WithdrawIn, correlation_id: str | None = None
    ) -> str:
        """The submitter withdraws their open idea: a status change to the final state withdrawn, by their
        pseudonym, through the same compare-and-set as an officer's (only one of two concurrent changes wins)."""
        record, pseudonym = await self._submitters(principal, idea_id, "withdraw")
        check_withdrawable(record)
        event = IdeaStatusChanged(
            idea_id=idea_id,
            from_state=record.state,
            to_state=IdeaState.WITHDRAWN,
            reason=request.reason or None,
            changed_by=pseudonym,
        )
        return await self._move(record, event, correlation_id)

    async def _move(self, record: IdeaRecord, event: IdeaStatusChanged, correlation_id: str | None) -> str:
        envelope = self._wrap(event, correlation_id=correlation_id)
        if not await self.store.move(record.idea_id, record.state, event.to_state, iso(envelope.time)):
            raise Conflict("the idea changed state meanwhile; reload it and try again", code="changed-meanwhile")
        try:
            await self.publisher.publish(self.topics.status_changed, envelope)
        except BaseException:
            await self.store.move(record.idea_id, event.to_state, record.state, iso(envelope.time))
            raise
        self.logger.info(
            "status changed",
            extra={
                "idea_id": record.idea_id,
                "event_id": envelope.id,
                "from_state": record.state.value,
                "to_state": event.to_state.value,
                "organisation": event.organisation,  # who acted is in the event; a log line names no one
            },
        )
        return envelope.id

    # --- assignment -----------------------------------------------------------------------------------------

    async def assign(
        self, principal: Principal, idea_id: str, request: AssignmentIn, correlation_id: str | None = None
    ) -> str | None:
        """Give the idea to one officer of an organisation that owns it (or to nobody); None when it already was
        (nothing is published). The event names who had it before, as intake last heard."""
        record = await self._known(idea_id)
        organisation, assignee = assignment_of(
            principal, record, request.organisation, request.assignee, self.catalogue
        )
        previous = record.assignees.get(organisation)
        if previous == assignee:
            return None
        event = IdeaAssigned(
            idea_id=idea_id,
            organisation=organisation,
            assignee=assignee,
            previous=previous,
            assigned_by=principal.id,
        )
        envelope = self._wrap(event, correlation_id=correlation_id)
        await self.publisher.publish(self.topics.assignments, envelope)
        try:
            await self.store.record_assignment(idea_id, organisation, assignee, iso(envelope.time))
        except Exception as exc:  # Kafka has it: the follower records it from the topic
            self.logger.warning("assignment not recorded in Redis", extra={"idea_id": idea_id, "error": repr(exc)})
        self.logger.info(
            "idea assigned", extra={"idea_id": idea_id, "event_id": envelope.id, "organisation": organisation}
        )
        return envelope.id


def _asked(challenge: ChallengeOpened) -> dict:
    """What a challenge asks (not when it was opened): two requests under one key must ask the same."""
    return challenge.model_dump(exclude={"opens_at"})
