"""The people's rights at intake on in-memory fakes: the erasure request, forgetting a person, the export, and the
ticks that keep people.keys.v1 compacting."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import timedelta

import pytest

from services.intake.domain import Person
from services.intake.handlers import Intake
from services.intake.models import CommentIn, EditIn, IdeaIn, SubmitterIn, WithdrawIn
from services.intake.people import TICK_KEY, ExportUnavailable, People, closing_key_segments
from shared.catalogue import load_catalogue
from shared.events import (
    DeliveryOutcome,
    Envelope,
    NotificationSent,
    PreferencesChanged,
    utc_now,
)
from shared.principal import Principal, Role
from shared.topics import Topics
from tests.fakes.common import FakeKeyring, FakePublisher, FixedClock
from tests.fakes.intake import FakeHistory, FakeIntakeStore
from tests.support.kafka import eventually

TOPICS = Topics()
ANNA = Person(email="anna@kiruna.se", name="Anna Svensson", organisation="kiruna-kommun")
SARA = Person(email="sara@kiruna.se", name="Sara Pekkari")
ADMIN = Principal(id="admin", email="admin@kiruna.se", roles=frozenset({Role.ADMIN}))


def named(person: Person, title: str = "Fjärrvärme till badhuset") -> IdeaIn:
    submitter = SubmitterIn(name=person.name, email=person.email, organisation=person.organisation)
    return IdeaIn(title=title, description="Anslut badhuset till fjärrvärmen", submitter=submitter)


class Fakes:
    def __init__(self) -> None:
        self.publisher = FakePublisher()
        self.store = FakeIntakeStore()
        # The fake keyring dates its keys by the real clock: the requests come an hour later (see came_back)
        self.clock = FixedClock(utc_now() + timedelta(hours=1))
        self.keyring = FakeKeyring()
        self.history = FakeHistory(self.publisher)
        self.intake = Intake(
            self.publisher,
            self.store,
            load_catalogue(),
            self.keyring,
            topics=TOPICS,
            public_base_url="http://status.test",
            idempotency_ttl_s=3600,
            clock=self.clock,
        )
        self.people = People(
            self.publisher,
            self.store,
            self.keyring,
            topics=TOPICS,
            history=self.history,
            export_timeout_s=5,
            clock=self.clock,
        )

    async def engaged(self, person: Person) -> str:
        """A named idea of ``person`` (with an Idempotency-Key), their comment, support and follow of it."""
        key = f"key-{len(self.publisher.on(TOPICS.submitted))}-12345"
        idea_id = (await self.intake.submit(named(person), idempotency_key=key)).idea_id
        await self.intake.comment(idea_id, person, CommentIn(text=f"Bra idé, hälsar {person.name}"))
        await self.intake.support(idea_id, person)
        await self.intake.follow(idea_id, person)
        return idea_id

    async def came_back(self, person: Person) -> None:
        """Time passes, and the (erased) person is given a fresh key, made now."""
        self.clock.advance(minutes=5)
        key = await self.keyring.key_for(person.email)
        self.keyring.keys[key.pseudonym] = dataclasses.replace(key, created=self.clock())

    async def erasure(self, person: Person) -> Envelope:
        await self.people.request_erasure(person.email)
        return self.publisher.on(TOPICS.people_erasures)[-1]

    async def preferences(self, person: Person, **fields) -> None:
        key = await self.keyring.key_for(person.email)
        contact = key.seal_json({"email": person.email, "name": person.name})
        event = PreferencesChanged(person=key.pseudonym, contact=contact, **fields)
        await self.publisher.publish(TOPICS.preferences, Envelope.wrap(event, source="/tests", time=self.clock()))

    async def notified(self, person: Person, idea_id: str) -> None:
        sent = NotificationSent(
            idea_id=idea_id,
            cause_event_id="cause",
            recipient=self.keyring.pseudonym(person.email),
            channel="email",
            outcome=DeliveryOutcome.DELIVERED,
        )
        await self.publisher.publish(TOPICS.notifications_sent, Envelope.wrap(sent, source="/tests", time=self.clock()))


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


# --- the request ----------------------------------------------------------------------------------------------


async def test_an_erasure_request_is_published_keyed_by_pseudonym_and_names_no_one(fakes):
    await fakes.people.request_erasure("Anna@Kiruna.se", correlation_id="c-1")
    await fakes.people.request_erasure("sara@kiruna.se", admin=ADMIN)
    mine, hers = fakes.publisher.on(TOPICS.people_erasures)
    assert mine.subject == mine.data.pseudonym == fakes.keyring.pseudonym("anna@kiruna.se")
    assert (mine.data.requested_by, mine.data.admin, mine.correlationid) == ("person", None, "c-1")
    assert (hers.data.requested_by, hers.data.admin) == ("admin", "admin")
    assert "anna" not in mine.model_dump_json().lower() and "sara" not in hers.model_dump_json().lower()
    assert fakes.keyring.keys == {}  # asking makes no key: an unknown person stays unknown


# --- forgetting -----------------------------------------------------------------------------------------------


async def test_forgetting_a_person_shreds_their_key_and_intakes_state_about_them_and_no_one_elses(fakes):
    anna_idea = await fakes.engaged(ANNA)
    await fakes.intake.support(anna_idea, SARA)
    sara_idea = (await fakes.intake.submit(named(SARA), idempotency_key="key-sara-12345")).idea_id
    anna, sara = fakes.keyring.pseudonym(ANNA.email), fakes.keyring.pseudonym(SARA.email)
    comment = next(e for e in fakes.publisher.on(TOPICS.engagement) if e.data.kind == "comment")

    await fakes.people.forget(await fakes.erasure(ANNA))

    assert fakes.keyring.tombstoned == [anna] and anna not in fakes.keyring.keys and sara in fakes.keyring.keys
    assert await fakes.keyring.open(comment.data.text) is None  # the comment is unreadable in the whole history
    assert fakes.store.supporters[anna_idea] == {sara} and anna not in fakes.store.supported_by
    assert fakes.store.records_of == {sara: {"-\nkey-sara-12345"}}
    assert [record["answer"]["idea_id"] for record in fakes.store.idempotency.values()] == [sara_idea]
    # the idea stays known (the organisation's record); a repeat changes nothing
    assert await fakes.store.idea(anna_idea) is not None
    await fakes.people.forget(fakes.publisher.on(TOPICS.people_erasures)[-1])
    assert fakes.store.supporters[anna_idea] == {sara} and sara in fakes.keyring.keys


async def test_a_person_who_comes_back_starts_from_nothing_and_a_late_redelivery_does_not_erase_them_again(fakes):
    idea_id = await fakes.engaged(ANNA)
    request = await fakes.erasure(ANNA)
    await fakes.people.forget(request)
    erased_key = next(e for e in fakes.publisher.on(TOPICS.engagement)).data.person.sealed.key
    await fakes.came_back(ANNA)
    await fakes.intake.support(idea_id, ANNA)  # the support may be given again
    new_key = await fakes.keyring.current(fakes.keyring.pseudonym(ANNA.email))
    assert new_key.key_id != erased_key and new_key.created > request.time
    await fakes.people.forget(request)  # the old request delivered again
    assert await fakes.keyring.current(new_key.pseudonym) == new_key
    assert fakes.store.supporters[idea_id] == {new_key.pseudonym}


async def test_forgetting_someone_the_platform_never_knew_erases_nothing(fakes):
    await fakes.engaged(SARA)
    before = (dict(fakes.store.supporters), dict(fakes.store.idempotency), dict(fakes.keyring.keys))
    await fakes.people.forget(await fakes.erasure(Person(email="nobody@kiruna.se")))
    assert (dict(fakes.store.supporters), dict(fakes.store.idempotency), dict(fakes.keyring.keys)) == before


# --- the export -----------------------------------------------------------------------------------------------


async def test_the_export_holds_everything_about_the_person_decrypted_and_nothing_about_anyone_else(fakes):
    idea_id = await fakes.engaged(ANNA)
    saras = await fakes.engaged(SARA)
    await fakes.intake.support(idea_id, SARA)
    anna = Principal(id="anna", email=ANNA.email)
    await fakes.intake.edit(anna, idea_id, EditIn(title="Fjärrvärme till simhallen"))
    await fakes.intake.withdraw(anna, idea_id, WithdrawIn(reason="Simhallen får redan fjärrvärme"))
    await fakes.intake.edit(Principal(id="sara", email=SARA.email), saras, EditIn(title="Saras nya rubrik"))
    await fakes.preferences(ANNA, frequency="immediate")
    fakes.clock.advance(minutes=1)
    await fakes.preferences(ANNA, frequency="daily", areas=("boende",))
    await fakes.preferences(SARA, frequency="daily")
    await fakes.notified(ANNA, idea_id)
    await fakes.notified(SARA, idea_id)

    export = await fakes.people.export("Anna@Kiruna.se")

    assert export.person.model_dump(exclude={"key_created"}) == {
        "pseudonym": fakes.keyring.pseudonym(ANNA.email),
        "email": "anna@kiruna.se",
        "name": "Anna Svensson",
    }
    [idea] = export.ideas
    assert (idea.idea_id, idea.title, idea.channel, idea.organisation) == (
        idea_id,
        "Fjärrvärme till badhuset",
        "api",
        "kiruna-kommun",
    )
    assert [(e.title, e.description) for e in idea.edits] == [
        ("Fjärrvärme till simhallen", "Anslut badhuset till fjärrvärmen")
    ]
    assert idea.withdrawn.reason == "Simhallen får redan fjärrvärme"
    assert [(c.idea_id, c.text) for c in export.comments] == [(idea_id, "Bra idé, hälsar Anna Svensson")]
    assert [s.idea_id for s in export.supports] == [idea_id] and [f.idea_id for f in export.follows] == [idea_id]
    assert export.preferences.frequency == "daily" and export.preferences.areas == ["boende"]
    assert export.preferences.contact == {"email": "anna@kiruna.se", "name": "Anna Svensson"}
    assert [(n.idea_id, n.channel, n.outcome) for n in export.notifications] == [(idea_id, "email", "delivered")]
    assert "sara" not in export.model_dump_json().lower()
    assert fakes.history.read == [
        [
            TOPICS.submitted,
            TOPICS.engagement,
            TOPICS.preferences,
            TOPICS.notifications_sent,
            TOPICS.edited,
            TOPICS.status_changed,
        ]
    ]


async def test_after_erasure_the_export_is_empty_and_a_person_who_comes_back_sees_only_what_came_after(fakes):
    idea_id = await fakes.engaged(ANNA)
    await fakes.notified(ANNA, idea_id)
    await fakes.people.forget(await fakes.erasure(ANNA))

    erased = await fakes.people.export(ANNA.email)
    assert erased.person is None and erased.preferences is None
    assert (erased.ideas, erased.comments, erased.supports, erased.follows, erased.notifications) == ([],) * 5
    assert fakes.history.read == []  # nothing to read for a person without a key

    await fakes.came_back(ANNA)
    await fakes.intake.comment(idea_id, ANNA, CommentIn(text="Jag är tillbaka"))
    await fakes.notified(ANNA, idea_id)
    back = await fakes.people.export(ANNA.email)
    assert [c.text for c in back.comments] == ["Jag är tillbaka"] and back.ideas == [] and back.supports == []
    assert len(back.notifications) == 1  # only the one sent since the new key was made


async def test_a_tombstone_on_the_preferences_forgets_them(fakes):
    await fakes.preferences(ANNA, frequency="daily")
    fakes.history.tombstone(TOPICS.preferences, fakes.keyring.pseudonym(ANNA.email))
    assert (await fakes.people.export(ANNA.email)).preferences is None


async def test_without_kafka_or_past_its_time_the_export_is_unavailable(fakes):
    await fakes.engaged(ANNA)
    fakes.history.unavailable = True
    with pytest.raises(ExportUnavailable, match="Kafka could not be read"):
        await fakes.people.export(ANNA.email)
    fakes.history.unavailable = False
    fakes.history.slow_s = 1.0
    fakes.people.export_timeout_s = 0.1
    with pytest.raises(ExportUnavailable, match=r"longer than 0\.1 s"):
        await fakes.people.export(ANNA.email)


# --- people.keys.v1 keeps compacting --------------------------------------------------------------------------


class TickWriter:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.tombstones: list[str] = []

    async def record(self, key) -> None:  # pragma: no cover - not used by the ticks
        raise AssertionError("the ticks record no key")

    async def tombstone(self, pseudonym: str) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("Kafka is away")
        self.tombstones.append(pseudonym)


async def test_the_key_topic_gets_a_tick_once_kafka_is_connected_and_then_regularly_and_failures_are_not_fatal(
    caplog,
):
    writer = TickWriter(failures=2)
    connected = asyncio.Event()
    caplog.set_level(logging.WARNING)
    async with closing_key_segments(writer, connected=connected, interval_s=0.01) as task:
        await asyncio.sleep(0.05)
        assert writer.tombstones == [] and writer.failures == 2  # not before Kafka is there
        connected.set()
        await eventually(lambda: len(writer.tombstones) >= 3, timeout=5, interval=0.01)
        assert not task.done()
    assert task.cancelled() and set(writer.tombstones) == {TICK_KEY}
    assert sum("could not write the people.keys.v1 tick" in r.getMessage() for r in caplog.records) == 2
