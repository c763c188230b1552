"""A person erased, on the real Kafka, Redis and Keycloak with a real SMTP server: notifications forgets them
(Redis holds neither their address nor their name nor their words), sends them nothing more and ends their live
stream; a value sealed under a key that is gone is handled without a dead letter; a mail waiting for the mail
server to someone whose key is gone is skipped, not sent; and what goes to Kafka (notifications.sent.v2,
notifications.dlq), the logs and the metrics never carries an address, even when the mail server's refusal names
one."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid

import pytest

from services.notifications.app import create_app
from shared.events import EngagementKind, IdeaState
from tests.support.apps import running
from tests.support.identity import EMAIL, PER, bearer
from tests.support.kafka import eventually, probe, raw_producer
from tests.support.notifications import (
    ANNA,
    JOHN,
    SARA,
    free_port,
    name_of,
    publish,
    redis_mentions,
    routed,
    sealing,
    smtp_server,
    status,
)

DEAD_LETTERED = re.compile(r"^kiruna_dead_letters_total\{.*\} (?!0\.0$)", re.M)
"""A dead-letter series above 0 (every series exists at 0 from the start)."""

pytestmark = pytest.mark.kafka

PERS = EMAIL[PER]  # a user of the realm: he sets his preferences and opens his live stream himself
KIM, LISA, GONE = "kim@kiruna.se", "lisa@kiruna.se", "gone@kiruna.se"


def outcomes(records, cause: str | None = None) -> list[dict]:
    found = [json.loads(r.value)["data"] for r in records]
    return [o for o in found if cause is None or o["cause_event_id"] == cause]


def no_address(raw: bytes | str, *addresses: str) -> bool:
    text = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw).lower()
    return not [a for a in addresses if a.lower() in text]


async def test_an_erased_person_hears_nothing_more_and_redis_keeps_nothing_of_them(
    settings_for, topics, kafka_settings, redis_prefix
):
    idea = str(uuid.uuid4())
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        app = create_app(settings)
        async with (
            running(app) as api,
            sealing(settings) as people,
            raw_producer(kafka_settings) as producer,
            probe(kafka_settings, topics.notifications_sent) as sent,
        ):
            per = people.pseudonym(PERS)
            answer = await api.put("/api/v1/people/me/preferences", json={"areas": ["boende"]}, headers=bearer(PER))
            assert answer.status_code == 200
            await publish(producer, topics.submitted, await people.submitted(idea, "Laddstolpar vid garaget"))
            await publish(producer, topics.routed, routed(idea, "Laddstolpar", [("kirunabostader", None)], ["boende"]))
            comment = await people.engaged(idea, EngagementKind.COMMENT, PERS, "Per Niemi här: bra förslag")
            await publish(producer, topics.engagement, comment)
            await eventually(lambda: mail.to(PERS) and len(mail.to(ANNA)) == 2, timeout=30)  # routed; the comment
            feed = (await api.get("/api/v1/people/me/feed", headers=bearer(PER))).json()
            assert feed["person"] == PERS and [i["kind"] for i in feed["items"]] == ["routed"]
            store = app.state.handlers.store
            assert await redis_mentions(store.redis, redis_prefix, PERS) == []  # his address: sealed, always
            quoted = await redis_mentions(store.redis, redis_prefix, "Per Niemi")  # only where his comment is quoted
            assert {key for key, _ in quoted} == {store.key("feed", people.pseudonym(ANNA))}

            stream = asyncio.create_task(api.get("/api/v1/people/me/stream", headers=bearer(PER)))
            await eventually(lambda: app.state.streams.count == 1)

            await publish(producer, topics.people_erasures, await people.erase(PERS))

            await asyncio.wait_for(stream, timeout=30)  # his open stream ended
            assert app.state.streams.count == 0

            async def forgotten() -> bool:
                return not await redis_mentions(store.redis, redis_prefix, "bra förslag") and not await store.feed(
                    per, 1
                )

            await eventually(forgotten)
            assert await redis_mentions(store.redis, redis_prefix, PERS, name_of(PERS), "Per Niemi") == []
            kept = {key for key, _ in await redis_mentions(store.redis, store.key("").rstrip(":"), per)}
            assert kept == {store.key("erased", per)}  # of notifications' keys, only that he was erased
            [quoted] = [i for i in await store.feed(people.pseudonym(ANNA), 10) if i["kind"] == "comment"]
            assert quoted["text"].endswith("(Kommentaren är borttagen)")  # his words, quoted to Anna, removed

            change = status(idea, IdeaState.ACCEPTED, "Vi bygger", "sara.pekkari")
            await publish(producer, topics.status_changed, change)
            told = await sent.wait_for(lambda rs: len(outcomes(rs, change.id)) >= 2, timeout=30)
            assert {o["recipient"] for o in outcomes(told, change.id)} == {people.pseudonym(ANNA)}
            await eventually(lambda: len(mail.to(ANNA)) == 3)
            assert len(mail.to(PERS)) == 1  # the routing, before he was erased

            # his own pages answer as for someone new: nothing kept
            assert (await api.get("/api/v1/people/me/feed", headers=bearer(PER))).json()["items"] == []
            prefs = (await api.get("/api/v1/people/me/preferences", headers=bearer(PER))).json()
            assert prefs["areas"] == [] and prefs["channels"] == ["email", "in-app"]
            metrics = (await api.get("/metrics")).text
            assert not DEAD_LETTERED.search(metrics) and no_address(metrics, PERS, ANNA)


async def test_values_sealed_under_a_key_that_is_gone_are_handled_without_a_dead_letter(
    settings_for, topics, kafka_settings
):
    """Events of people whose keys are gone (erased since the events were written): a submission, a follow and a
    comment. Each is handled: the idea reaches its officers, the comment is told as removed, nobody is made a
    follower or a contact, and nothing is dead-lettered."""
    theirs, annas = str(uuid.uuid4()), str(uuid.uuid4())
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        app = create_app(settings)
        async with (
            running(app) as api,
            sealing(settings) as people,
            raw_producer(kafka_settings) as producer,
            probe(kafka_settings, topics.notifications_sent) as sent,
            probe(kafka_settings, topics.dlq(topics.submitted)) as submitted_dlq,
            probe(kafka_settings, topics.dlq(topics.engagement)) as engagement_dlq,
        ):
            gone_submission = await people.submitted(theirs, "Snöskottning på taken", email=GONE)
            follow = await people.engaged(annas, EngagementKind.FOLLOW, KIM)
            comment = await people.engaged(annas, EngagementKind.COMMENT, LISA, "Lisas hemliga ord")
            for email in (GONE, KIM, LISA):
                await people.keyring.erase(people.pseudonym(email))  # their keys are gone; the events remain

            await publish(producer, topics.submitted, gone_submission, await people.submitted(annas, "Cykelpump"))
            await publish(producer, topics.routed, routed(theirs, "Snöskottning", [("kirunabostader", None)], []))
            await publish(producer, topics.routed, routed(annas, "Cykelpump", [("kirunabostader", None)], []))
            await publish(producer, topics.engagement, follow, comment)
            await eventually(lambda: len(mail.to(ANNA)) == 2, timeout=30)  # routed; a comment, removed
            [told_of_comment] = mail.to(ANNA, "comment")
            assert "(Kommentaren är borttagen.)" in told_of_comment.get_body(("plain",)).get_content()
            change = status(annas, IdeaState.IN_ASSESSMENT, None, "sara.pekkari")
            await publish(producer, topics.status_changed, change)
            told = await sent.wait_for(lambda rs: len(outcomes(rs, change.id)) >= 2, timeout=30)
            assert {o["recipient"] for o in outcomes(told, change.id)} == {people.pseudonym(ANNA)}  # not Kim

            assert {r for r, _ in mail.received} <= {ANNA, SARA, JOHN}  # nobody whose key is gone
            facts = await app.state.handlers.store.facts(theirs)
            assert facts.title == "Snöskottning" and facts.submitter is None  # the idea stays, without its submitter
            assert (await app.state.handlers.store.facts(annas)).followers == frozenset()
            assert submitted_dlq.records == [] and engagement_dlq.records == []
            assert not DEAD_LETTERED.search((await api.get("/metrics")).text)


async def test_a_mail_waiting_for_the_mail_server_to_someone_whose_key_went_is_skipped_not_sent(
    settings_for, topics, kafka_settings, redis_prefix
):
    idea = str(uuid.uuid4())
    port = free_port()  # nothing listens here yet
    # Anna's mail is queued first and retried while the others are queued: on a slow machine 8 tries ran out
    # before the mail server came (CI, stop 21). Here the mails never run out of tries.
    settings = settings_for(port, delivery_attempts=10_000)
    app = create_app(settings)
    async with (
        running(app) as api,
        sealing(settings) as people,
        raw_producer(kafka_settings) as producer,
        probe(kafka_settings, topics.notifications_sent) as sent,
        probe(kafka_settings, topics.notifications_dlq) as dlq,
    ):
        anna = people.pseudonym(ANNA)
        await publish(producer, topics.submitted, await people.submitted(idea, "Bastu i källaren"))
        await publish(producer, topics.routed, routed(idea, "Bastu i källaren", [("kirunabostader", None)], []))

        async def waiting() -> bool:  # Anna's, Sara's and John's mails were tried, and wait for the mail server
            text = (await api.get("/metrics")).text
            # the retries counter exists at 0 from the start: wait for a retry, not for the series
            tried = re.search(r'^kiruna_notification_retries_total\{channel="email"\} ([0-9.e+]+)$', text, re.M)
            return "kiruna_notification_pending_deliveries 3.0" in text and tried is not None and float(tried[1]) >= 3

        await eventually(waiting, timeout=30)
        await people.keyring.erase(anna)  # intake erased her key; the erasure event has not come yet
        app.state.runtime.keyring.forget_cached(anna)  # as it is forgotten here within CACHE_S

        with smtp_server(port) as mail:
            skipped = await sent.wait_for(
                lambda rs: [o for o in outcomes(rs) if o["channel"] == "email" and o["outcome"] == "skipped"],
                timeout=30,
            )
            await eventually(lambda: {r for r, _ in mail.received} == {SARA, JOHN}, timeout=30)
        [skip] = [o for o in outcomes(skipped) if o["channel"] == "email" and o["outcome"] == "skipped"]
        assert skip["recipient"] == anna and skip["detail"] == "erased"
        assert dlq.records == []  # never a dead letter for that

        # the erasure event then forgets the rest
        await publish(producer, topics.people_erasures, await people.erase(ANNA))
        store = app.state.handlers.store

        async def forgotten() -> bool:
            return not await store.feed(anna, 1) and await store.erased_at([anna])

        await eventually(forgotten)
        assert await redis_mentions(store.redis, redis_prefix, ANNA, name_of(ANNA)) == []
        assert await app.state.queue.size() == 0


class Refusing:
    """A mail server that refuses every recipient for good, naming the address in its answer (as servers do)."""

    def __init__(self) -> None:
        self.refused: list[str] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        self.refused.append(address)
        return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown in virtual mailbox table"


async def test_a_refusal_naming_the_address_reaches_no_kafka_record_log_or_metric(
    settings_for, topics, kafka_settings, caplog
):
    from aiosmtpd.controller import Controller

    caplog.set_level(logging.DEBUG)
    idea = str(uuid.uuid4())
    refusing = Refusing()
    controller = Controller(refusing, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        settings = settings_for(controller.port, delivery_attempts=2)
        app = create_app(settings)
        async with (
            running(app) as api,
            sealing(settings) as people,
            raw_producer(kafka_settings) as producer,
            probe(kafka_settings, topics.notifications_sent) as sent,
            probe(kafka_settings, topics.notifications_dlq) as dlq,
        ):
            await publish(producer, topics.submitted, await people.submitted(idea, "Ingen tar emot"))
            await publish(producer, topics.routed, routed(idea, "Ingen tar emot", [("kirunabostader", None)], []))
            letters = await dlq.wait_count(3, timeout=30)  # Anna's, Sara's and John's: refused for good
            failed = await sent.wait_for(lambda rs: sum(b'"failed"' in r.value for r in rs) >= 3, timeout=30)
            metrics = (await api.get("/metrics")).text
    finally:
        controller.stop()

    everyone = (ANNA, SARA, JOHN)
    assert {a.lower() for a in refusing.refused} == set(everyone)  # the server did see (and name) them
    for record in [*letters, *failed]:
        assert no_address(record.value, *everyone), record.value
        assert all(no_address(value, *everyone) for _, value in record.headers or ()), record.headers
    headers = {name: value.decode() for name, value in letters[0].headers}
    assert headers["x-dlq-reason"] == "delivery-failed" and headers["x-dlq-kind"] == "routed"
    assert "550" in headers["x-dlq-error"] and "***@" in headers["x-dlq-error"]  # masked, yet telling
    letter = json.loads(letters[0].value)
    assert letter["error"].startswith("DeliveryRejected: SMTP refused the recipient") and "***@" in letter["error"]
    assert (
        not {"message", "text", "html", "subject"} & set(letter) and "Ingen tar emot" not in letters[0].value.decode()
    )
    details = [o["detail"] for o in outcomes(failed) if o["outcome"] == "failed"]
    assert all(detail.count("***@") == 1 for detail in details)
    ours = [record for record in caplog.records if not record.name.startswith("mail.")]  # not the test's mail server
    logged = [f"{record.getMessage()} {record.__dict__!r}" for record in ours]
    told = {record.getMessage() for record in ours if record.name == "notifications"}
    assert {"event dead-lettered", "delivery given up"} <= told  # the logs of the refusals were looked at
    assert logged and [line for line in logged if not no_address(line, *everyone)] == []
    assert no_address(metrics, *everyone)
