"""Notifications on the real Kafka and Redis, with a real SMTP server (aiosmtpd) and a real HTTP receiver
started inside each test: the right people hear each event, once, in their language, by their channels. People in
the events are sealed with a real keyring of the service's Redis prefix (``tests/support/notifications.sealing``),
as intake seals them; the mail server sees their addresses, Kafka's outcomes and dead letters only pseudonyms."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import uvicorn

from services.notifications import domain
from services.notifications.app import create_app
from services.notifications.domain import Contact
from services.notifications.settings import NotificationsSettings
from shared.events import (
    EngagementKind,
    IdeaState,
)
from shared.workdays import is_working_day
from tests.support.apps import running
from tests.support.identity import ADMIN, EMAIL, PER, bearer
from tests.support.identity import ANNA as ANNA_USER
from tests.support.identity import SARA as SARA_USER
from tests.support.kafka import eventually, probe, raw_producer
from tests.support.notifications import (
    ANNA,
    ERIK,
    JOHN,
    OFFICE,
    SARA,
    free_port,
    publish,
    routed,
    sealing,
    smtp_server,
    status,
)

pytestmark = pytest.mark.kafka

SUBSCRIBER = EMAIL[PER]  # an English-speaking subscriber: a user of the realm, who reads only his own preferences
USER_OF = {ANNA: ANNA_USER, SARA: SARA_USER, SUBSCRIBER: PER}


# --- a real HTTP receiver -----------------------------------------------------------------------


def body(message: EmailMessage, subtype: str) -> str:
    return message.get_body(preferencelist=(subtype,)).get_content()


class Receiver:
    """A minimal ASGI webhook receiver that verifies the signature of every call, as an organisation would."""

    def __init__(self, secret: str, fail_first: int = 0) -> None:
        self.secret = secret
        self.fail_first = fail_first
        self.calls: list[dict] = []
        self.verified: list[dict] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.calls.append(headers)
        expected = (
            "sha256="
            + hmac.new(
                self.secret.encode(), headers["x-kiruna-timestamp"].encode() + b"." + raw, hashlib.sha256
            ).hexdigest()
        )
        if not hmac.compare_digest(expected, headers.get("x-kiruna-signature", "")):
            status = 401
        elif len(self.calls) <= self.fail_first:
            status = 500
        else:
            status = 204
            self.verified.append(json.loads(raw))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@contextlib.asynccontextmanager
async def http_receiver(app) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, timeout=10)
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        server.should_exit = True
        await task


def pseudonym_of(app, email: str) -> str:
    return app.state.runtime.keyring.pseudonym(email)


def outcomes_of(records) -> list[dict]:
    return [json.loads(r.value)["data"] for r in records]


def addresses_in(raw: bytes | str, *addresses: str) -> list[str]:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return [a for a in addresses if a.lower() in text.lower()]


# --- the tests ------------------------------------------------------------------------------------


async def test_each_event_reaches_the_right_people_once_in_their_language(settings_for, topics, kafka_settings):
    idea_id = str(uuid.uuid4())
    title = "Fjärrvärme till <b>badhuset</b> & hyreshusen"
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        async with (
            running(create_app(settings)) as api,
            sealing(settings) as people,
            raw_producer(kafka_settings) as producer,
            probe(kafka_settings, topics.notifications_sent) as sent,
        ):
            # an English subscriber of an area; an officer and the submitter who also subscribe (heard once)
            for person, prefs in (
                (SUBSCRIBER, {"areas": ["boende"], "language": "en"}),
                (SARA, {"organisations": ["kirunabostader"]}),
                (ANNA, {"areas": ["klimat-och-energi"]}),
            ):
                answer = await api.put("/api/v1/people/me/preferences", json=prefs, headers=bearer(USER_OF[person]))
                assert answer.status_code == 200, answer.text
            await publish(
                producer,
                topics.routed,
                routed(
                    idea_id,
                    title,
                    [("tekniska-verken", "energi"), ("kirunabostader", "forvaltning")],
                    ["klimat-och-energi", "boende"],
                ),
            )
            await publish(producer, topics.submitted, await people.submitted(idea_id, title))  # the routing overtook it

            # routed: the submitter, the responsible officers (by organisation/unit and area), the subscriber
            expected = {ANNA, ERIK, SARA, JOHN, SUBSCRIBER}
            await eventually(lambda: set(mail.of_kind("routed")) == expected, timeout=30)
            routed_mails = mail.of_kind("routed")
            swedish = body(routed_mails[ANNA], "plain")
            assert routed_mails[ANNA]["Subject"].startswith("Din idé")
            assert "har skickats till Tekniska Verken i Kiruna – Energi och fjärrvärme och Kirunabostäder" in swedish
            assert f"https://innovation.kiruna.se/ideas/{idea_id}" in swedish
            assert routed_mails[ERIK]["Subject"].startswith("En ny idé till er")
            assert routed_mails[JOHN]["Subject"].startswith("A new idea for you")  # officer's catalogue language
            english = body(routed_mails[SUBSCRIBER], "plain")
            assert (
                english.startswith("Hello")
                and "A new idea has been submitted in Climate and energy and Housing" in english
            )
            html = body(routed_mails[ANNA], "html")
            assert "&lt;b&gt;badhuset&lt;/b&gt; &amp; hyreshusen" in html and "<b>badhuset" not in html
            assert routed_mails[ANNA]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert routed_mails[ANNA]["List-Unsubscribe"].startswith("<https://notifications.kiruna.se/api/v1/unsub")
            # as a mail client reads it: the URL itself on one line, never RFC 2047 encoded words
            [raw] = [content for rcpt, content in mail.raw if rcpt == ANNA and b"X-Kiruna-Kind: routed" in content]
            [line] = [line for line in raw.split(b"\r\n") if line.startswith(b"List-Unsubscribe:")]
            assert line.startswith(b"List-Unsubscribe: <https://notifications.kiruna.se/api/v1/unsub"), line
            assert b"=?" not in line
            assert routed_mails[ANNA]["X-Kiruna-Event"] and routed_mails[ANNA]["Message-ID"].endswith("@kiruna.se>")

            feed = (await api.get(f"/api/v1/people/{ANNA.upper()}/feed", headers=bearer(ANNA_USER))).json()["items"]
            assert [item["kind"] for item in feed] == ["routed"] and feed[0]["text"].startswith("Din idé")

            # a supporter and a commenter follow the idea; the comment reaches the submitter and the supporter
            await publish(
                producer,
                topics.engagement,
                await people.engaged(idea_id, EngagementKind.SUPPORT, "per@kiruna.se"),
                await people.engaged(idea_id, EngagementKind.FOLLOW, "Kim@Kiruna.se"),
                await people.engaged(idea_id, EngagementKind.COMMENT, "lisa@kiruna.se", "Bra idé, <script>x</script>"),
            )
            await eventually(lambda: set(mail.of_kind("comment")) == {ANNA, "per@kiruna.se", "kim@kiruna.se"})
            assert "<script>" not in body(mail.of_kind("comment")[ANNA], "html")
            assert "Bra idé, <script>x</script>" in body(mail.of_kind("comment")[ANNA], "plain")

            # a status change: the submitter, every follower, the subscribers of its areas and organisations (Sara
            # follows Kirunabostäder); not the officer who made it
            await publish(producer, topics.status_changed, status(idea_id, IdeaState.DECLINED, "Finns redan i planen"))
            expected = {ANNA, "per@kiruna.se", "kim@kiruna.se", "lisa@kiruna.se", SUBSCRIBER, SARA}
            await eventually(lambda: set(mail.of_kind("status-changed")) == expected)
            declined = body(mail.of_kind("status-changed")[ANNA], "plain")
            assert "är nu avböjd" in declined and "Erik Lindberg skriver: Finns redan i planen" in declined
            assert "is now declined" in body(mail.of_kind("status-changed")[SUBSCRIBER], "plain")

            # every outcome reported (each mail's once it was delivered): nothing else was sent
            records = await sent.wait_for(lambda rs: len(rs) >= 2 * 14, timeout=30)
            assert len(mail.received) == 5 + 3 + 6
            outcomes = outcomes_of(records)
            assert {(o["channel"], o["outcome"]) for o in outcomes} == {("email", "delivered"), ("in-app", "delivered")}
            assert len({(o["cause_event_id"], o["recipient"], o["channel"]) for o in outcomes}) == len(outcomes)
            everyone = {ANNA, ERIK, SARA, JOHN, SUBSCRIBER, "per@kiruna.se", "kim@kiruna.se", "lisa@kiruna.se"}
            assert {o["recipient"] for o in outcomes} == {people.pseudonym(person) for person in everyone}
            assert not [r for r in records if addresses_in(r.value, *everyone)]  # pseudonyms only
            metrics = (await api.get("/metrics")).text
            assert 'kiruna_notifications_total{channel="email",outcome="delivered"} 14.0' in metrics
            assert not addresses_in(metrics, *everyone)


async def test_the_same_event_twice_and_a_restart_before_the_commit_send_no_second_mail(
    settings_for, topics, kafka_settings, test_id
):
    idea_id = str(uuid.uuid4())
    title = "Solceller på förskolan"
    event = routed(idea_id, title, [("tekniska-verken", "energi")], ["klimat-och-energi"])
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        async with raw_producer(kafka_settings) as producer, sealing(settings) as people:
            await publish(producer, topics.submitted, await people.submitted(idea_id, title))
            await publish(producer, topics.routed, event, event)  # the same event, twice
            async with (
                running(create_app(settings)),
                probe(kafka_settings, topics.notifications_sent) as told,
            ):
                await eventually(lambda: len(mail.received) >= 2, timeout=30)
                await told.wait_count(4)  # in-app and e-mail of both: the events handled
            assert sorted(r for r, _ in mail.received) == sorted([ANNA, ERIK])
            # A consumer that crashed before committing reads the same events again: a new consumer group on the
            # same Redis sees exactly what it would see.
            async with (
                running(create_app(settings_for(mail.port, group_id=f"again-{test_id}"))) as again,
                probe(kafka_settings, topics.notifications_sent) as sent,
            ):
                marker = await people.submitted(str(uuid.uuid4()), "Markör", email="marker@kiruna.se")
                await publish(producer, topics.submitted, marker)
                await publish(producer, topics.routed, routed(marker.subject, "Markör", [("kirunabostader", None)], []))
                await eventually(lambda: mail.to("marker@kiruna.se"), timeout=30)  # so the replay is done
                metrics = (await again.get("/metrics")).text
            assert sorted(r for r, m in mail.received if m["X-Kiruna-Idea"] == idea_id) == sorted([ANNA, ERIK])
            message_ids = [m["Message-ID"] for _, m in mail.received]
            assert len(message_ids) == len(set(message_ids))
            assert 'kiruna_idempotent_skips_total{service="notifications",topic="routed"}' in metrics
            ids = [r.value for r in sent.records if json.loads(r.value)["data"]["idea_id"] == idea_id]
            assert len({json.loads(v)["id"] for v in ids}) == 4  # in-app and e-mail for two people, each one id


async def test_smtp_down_then_up_delivers_everything_exactly_once(settings_for, topics, kafka_settings):
    port = free_port()  # nothing listens here yet
    ideas = [str(uuid.uuid4()) for _ in range(5)]
    # two tries each: the outage uses none of them (the server's absence is not the mails' fault)
    settings = settings_for(port, delivery_attempts=2)
    app = create_app(settings)
    async with (
        running(app) as api,
        sealing(settings) as people,
        raw_producer(kafka_settings) as producer,
        probe(kafka_settings, topics.notifications_sent) as sent,
    ):
        for number, idea_id in enumerate(ideas):
            submission = await people.submitted(idea_id, f"Idé {number}", email=f"p{number}@kiruna.se")
            await publish(producer, topics.submitted, submission)
            await publish(producer, topics.routed, routed(idea_id, f"Idé {number}", [("kirunabostader", None)], []))

        async def retried() -> bool:
            text = (await api.get("/metrics")).text
            return 'kiruna_notification_retries_total{channel="email"}' in text

        await eventually(retried, timeout=30)
        # the consumer was not blocked: every in-app notification is there while the mail server is down
        for number in range(5):
            await eventually(lambda n=number: _items(app, f"p{n}@kiruna.se", 1))

        async def all_pending() -> bool:  # per idea: its submitter, and Kirunabostäder's officers Sara and John
            return "kiruna_notification_pending_deliveries 15.0" in (await api.get("/metrics")).text

        await eventually(all_pending)
        with smtp_server(port) as mail:
            await eventually(lambda: len(mail.received) >= 15, timeout=30)
            await sent.wait_for(lambda rs: sum(b'"email"' in r.value for r in rs) >= 15, timeout=30)
        pairs = [(m["X-Kiruna-Event"], r) for r, m in mail.received]
        assert len(pairs) == len(set(pairs)) == 15
        assert {r for r, _ in mail.received} == {f"p{n}@kiruna.se" for n in range(5)} | {SARA, JOHN}


async def test_a_webhook_is_signed_retried_and_delivered_once(settings_for, topics, kafka_settings):
    idea_id = str(uuid.uuid4())
    receiver = Receiver("webhook-secret", fail_first=1)
    with smtp_server() as mail:
        async with http_receiver(receiver) as url:
            webhooks = {"tekniska-verken": {"url": url, "secret": "webhook-secret"}}
            settings = settings_for(mail.port, webhooks=webhooks)
            async with (
                running(create_app(settings)),
                sealing(settings) as people,
                raw_producer(kafka_settings) as producer,
                probe(kafka_settings, topics.notifications_sent) as sent,
            ):
                await publish(producer, topics.submitted, await people.submitted(idea_id, "Värmepump i ishallen"))
                await publish(
                    producer,
                    topics.routed,
                    routed(
                        idea_id, "Värmepump i ishallen", [("tekniska-verken", "energi"), ("kirunabostader", None)], []
                    ),
                )
                await eventually(lambda: receiver.verified, timeout=30)
                await sent.wait_for(lambda rs: any(b'"webhook"' in r.value for r in rs), timeout=30)
                hook = [r for r in sent.records if b'"webhook"' in r.value]
                assert len(hook) == 1 and json.loads(hook[0].value)["data"]["recipient"] == "webhook:tekniska-verken"
    assert len(receiver.calls) == 2  # the first answered 500 and was retried
    assert len(receiver.verified) == 1  # kirunabostader has no webhook configured
    call = receiver.verified[0]
    assert call["organisation"] == "tekniska-verken" and call["idea_id"] == idea_id and call["kind"] == "routed"
    assert call["text"].startswith("En ny idé till er") and call["link"].endswith(f"/ideas/{idea_id}")
    assert receiver.calls[0]["x-kiruna-delivery"] == receiver.calls[1]["x-kiruna-delivery"] == call["id"]


class Deferring:
    """A mail server that answers, but defers every recipient (451): each try fails on the mail's own account."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        return "451 4.3.0 Mailbox temporarily unavailable, try again later"


async def test_a_delivery_that_keeps_failing_goes_to_the_dlq_and_is_reported_failed(
    settings_for, topics, kafka_settings
):
    from aiosmtpd.controller import Controller

    idea_id = str(uuid.uuid4())
    deferring = Controller(Deferring(), hostname="127.0.0.1", port=free_port())
    deferring.start()
    settings = settings_for(deferring.port, delivery_attempts=2, retry_base_s=0.05)
    app = create_app(settings)
    async with (
        contextlib.AsyncExitStack() as cleanup,
        running(app),
        sealing(settings) as people,
        raw_producer(kafka_settings) as producer,
        probe(kafka_settings, topics.notifications_dlq) as dlq,
        probe(kafka_settings, topics.notifications_sent) as sent,
    ):
        cleanup.callback(deferring.stop)
        await publish(producer, topics.submitted, await people.submitted(idea_id, "Ingen når fram"))
        await publish(producer, topics.routed, routed(idea_id, "Ingen når fram", [("kirunabostader", None)], []))
        records = await dlq.wait_count(3, timeout=30)
        headers = {k: v.decode() for k, v in records[0].headers}
        assert headers["x-dlq-reason"] == "delivery-failed" and headers["x-dlq-attempts"] == "2"
        assert "451" in headers["x-dlq-error"] and headers["x-dlq-kind"] == "routed"
        letters = [json.loads(r.value) for r in records]
        expected = {pseudonym_of(app, person) for person in (ANNA, SARA, JOHN)}
        assert {letter["recipient"] for letter in letters} == expected
        for letter in letters:  # what identifies the delivery, not the mail
            assert letter["channel"] == "email" and letter["idea_id"] == idea_id and letter["kind"] == "routed"
            assert letter["cause_event_id"] and letter["attempts"] == 2 and "451" in letter["error"]
            assert not {"message", "text", "html", "subject", "to"} & set(letter)
        failed = await sent.wait_for(
            lambda rs: sum(json.loads(r.value)["data"]["outcome"] == "failed" for r in rs) >= 3
        )
        assert {o["recipient"] for o in outcomes_of(failed) if o["outcome"] == "failed"} == expected
        for record in [*dlq.records, *sent.records]:
            raw = record.value + b"".join(v for _, v in record.headers or ())
            assert not addresses_in(raw, ANNA, SARA, JOHN) and b"Ingen n" not in record.value


async def test_a_broken_template_is_dead_lettered_and_the_consumer_carries_on(
    settings_for, topics, kafka_settings, tmp_path
):
    templates = tmp_path / "templates"
    for language in ("sv", "en"):
        source = Path(NotificationsSettings().templates_dir) / language
        (templates / language).mkdir(parents=True)
        for file in source.iterdir():
            (templates / language / file.name).write_text(file.read_text())
        (templates / language / "status-changed.txt.j2").write_text(
            "{% block subject %}{{ no_such_thing }}{% endblock %}"
        )
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    with smtp_server() as mail:
        settings = settings_for(mail.port, templates_dir=templates)
        async with (
            running(create_app(settings)),
            sealing(settings) as people,
            raw_producer(kafka_settings) as producer,
            probe(kafka_settings, topics.dlq(topics.status_changed)) as status_dlq,
        ):
            submissions = [await people.submitted(first, "Första"), await people.submitted(second, "Andra")]
            await publish(producer, topics.submitted, *submissions)
            await publish(producer, topics.status_changed, status(first, IdeaState.ACKNOWLEDGED, None))
            await publish(
                producer, topics.engagement, await people.engaged(first, EngagementKind.FOLLOW, "bo@kiruna.se")
            )
            comment = await people.engaged(first, EngagementKind.COMMENT, "lisa@kiruna.se", "Ja!")
            await publish(producer, topics.engagement, comment)
            broken = await status_dlq.wait_count(1)
            assert "no_such_thing" in {k: v.decode() for k, v in broken[0].headers}["x-dlq-error"]
            # and the consumer carried on
            await eventually(lambda: {r for r, _ in mail.received} == {ANNA, "bo@kiruna.se"})


async def remember_submitter(store, submission) -> None:
    """What the submission's handler does before it releases the waiting events (the test stops there)."""
    ref = submission.data.submitter
    await store.remember_contact(ref.pseudonym, ref.sealed)
    await store.remember_submission(submission.subject, Contact(ref.pseudonym), title=submission.data.title)


async def test_an_event_after_one_waiting_for_its_submission_does_not_overtake_it(settings_for, topics, kafka_settings):
    """bo follows an idea before its submission is seen; lisa comments just after the submission landed, before
    its releaser ran: the comment waits behind the follow, so bo hears of it, and nobody hears twice."""
    idea = str(uuid.uuid4())
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        app = create_app(settings)
        async with (
            running(app),
            sealing(settings) as people,
            probe(kafka_settings, topics.notifications_sent) as sent,
        ):
            submission = await people.submitted(idea, "Snöröjning vid busshållplatsen")
            handlers, store, room = app.state.handlers, app.state.handlers.store, app.state.waiting_room
            await handlers.engagement(await people.engaged(idea, EngagementKind.FOLLOW, "bo@kiruna.se"))
            assert len(await room.held(idea)) == 1  # no submission yet: it waits
            count, since = await room.waiting_ideas()
            assert count >= 1 and since is not None and since <= time.time()  # what the operators' gauges show
            await remember_submitter(store, submission)  # its releaser not yet run
            await handlers.engagement(await people.engaged(idea, EngagementKind.COMMENT, "lisa@kiruna.se", "Bra idé!"))
            await handlers.submitted(submission)  # nothing is left for it to release

            await eventually(lambda: {r for r, _ in mail.received} == {ANNA, "bo@kiruna.se"})
            assert await room.held(idea) == {}
            assert await room.redis.exists(room.key("idea", idea, "releaser")) == 0
            assert idea not in await room.redis.zrange(room.key("waiting"), 0, -1)
            # a later event is handled at once (lisa follows the idea since she commented)
            await handlers.engagement(await people.engaged(idea, EngagementKind.COMMENT, "bo@kiruna.se", "Håller med"))
            await eventually(lambda: [r for r, _ in mail.received].count(ANNA) == 2)
            await sent.wait_for(lambda rs: sum(b'"email"' in r.value for r in rs) >= 4)  # every mail reported
            assert sorted(r for r, _ in mail.received) == sorted([ANNA, ANNA, "bo@kiruna.se", "lisa@kiruna.se"])


async def test_events_left_waiting_by_a_releaser_that_died_are_released_by_the_next_event(settings_for, topics):
    idea = str(uuid.uuid4())
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        app = create_app(settings)
        async with running(app), sealing(settings) as people:
            submission = await people.submitted(idea, "Belysning i gångtunneln")
            handlers, store, room = app.state.handlers, app.state.handlers.store, app.state.waiting_room
            await handlers.engagement(await people.engaged(idea, EngagementKind.FOLLOW, "bo@kiruna.se"))
            await remember_submitter(store, submission)
            assert await room.start_release(idea, owner=submission.id)  # ... and the process dies here
            releaser = room.key("idea", idea, "releaser")
            await room.redis.expire(releaser, 1)
            await handlers.engagement(await people.engaged(idea, EngagementKind.COMMENT, "lisa@kiruna.se", "Bra idé!"))
            assert len(await room.held(idea)) == 2  # the releaser's lease still runs: the comment waits too

            async def lease_ran_out() -> bool:
                return not await room.redis.exists(releaser)

            await eventually(lease_ran_out, timeout=5)
            await handlers.engagement(await people.engaged(idea, EngagementKind.SUPPORT, "lisa@kiruna.se"))

            await eventually(lambda: {r for r, _ in mail.received} == {ANNA, "bo@kiruna.se"})
            assert await room.held(idea) == {}


async def test_a_digest_groups_a_days_events_per_person(settings_for, topics, kafka_settings):
    day = date(2026, 3, 2)
    at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    ideas = [str(uuid.uuid4()) for _ in range(3)]
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        async with (
            running(create_app(settings)) as api,
            sealing(settings) as people,
            raw_producer(kafka_settings) as producer,
            probe(kafka_settings, topics.notifications_sent) as sent,
        ):
            prefs = {"frequency": "daily", "language": "en"}
            answer = await api.put("/api/v1/people/me/preferences", json=prefs, headers=bearer(ANNA_USER))
            assert answer.status_code == 200
            for number, idea_id in enumerate(ideas):
                moment = at + timedelta(hours=number)
                await publish(producer, topics.submitted, await people.submitted(idea_id, f"Idé {number}", time=moment))
                await publish(
                    producer,
                    topics.routed,
                    routed(idea_id, f"Idé {number}", [("kirunabostader", None)], [], time=moment),
                )
            next_day = str(uuid.uuid4())
            later = await people.submitted(next_day, "Nästa dag", time=at + timedelta(days=1))
            await publish(producer, topics.submitted, later)
            await publish(
                producer,
                topics.routed,
                routed(next_day, "Nästa dag", [("kirunabostader", None)], [], time=at + timedelta(days=1)),
            )
            await eventually(lambda: len(mail.to(SARA)) == 4)  # Sara hears at once, Anna only in the digest
            assert mail.to(ANNA) == []
            feed = (await api.get("/api/v1/people/me/feed", headers=bearer(ANNA_USER))).json()["items"]
            assert len(feed) == 4  # in-app stays immediate

            answer = await api.post(f"/api/v1/digests/{day.isoformat()}", headers=bearer(ADMIN))
            assert answer.json() == {"day": "2026-03-02", "queued": 1}
            await eventually(lambda: mail.to(ANNA))
            again = await api.post(f"/api/v1/digests/{day.isoformat()}", headers=bearer(ADMIN))
            assert again.json()["queued"] == 0  # once
            await sent.wait_for(lambda rs: any(b"digest-2026-03-02" in r.value for r in rs))
    [digest] = mail.to(ANNA)
    assert digest["Subject"] == "Your daily news about ideas, 2026-03-02 (3)"
    text = body(digest, "plain")
    assert all(f'Your idea "Idé {n}" has been sent to' in text for n in range(3)) and "Nästa dag" not in text


async def test_response_time_targets_warn_the_officers_then_the_innovation_office_once(
    settings_for, topics, kafka_settings
):
    idea_id, acknowledged = str(uuid.uuid4()), str(uuid.uuid4())
    today = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    monday = today + timedelta(days=7 - today.weekday())  # routed next Monday: the service's own timer finds it in time
    while not all(is_working_day((monday + timedelta(days=n)).date()) for n in (0, 1, 2, 3, 4, 7, 8)):
        monday += timedelta(days=7)  # a week without holidays, so that the working days below are plain weekdays
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        app = create_app(settings)
        async with (
            running(app),
            sealing(settings) as people,
            raw_producer(kafka_settings) as producer,
            probe(kafka_settings, topics.notifications_sent) as sent,
        ):
            for idea in (idea_id, acknowledged):
                submission = await people.submitted(idea, "Snabbare felanmälan", time=monday)
                await publish(producer, topics.submitted, submission)
                await publish(
                    producer,
                    topics.routed,
                    routed(idea, "Snabbare felanmälan", [("kirunabostader", "forvaltning")], ["boende"], time=monday),
                )
            await publish(producer, topics.status_changed, status(acknowledged, IdeaState.ACKNOWLEDGED, None))
            await eventually(lambda: len(mail.received) == 2 * 3 + 1)  # routed: Anna, Sara, John; ack: Anna
            handlers = app.state.handlers
            assert await handlers.check_deadlines(monday + timedelta(days=3)) == 0  # Thursday: in time
            assert await handlers.check_deadlines(monday + timedelta(days=4)) == 1  # Friday: one working day left
            await eventually(lambda: set(mail.of_kind("deadline-warning")) == {SARA, JOHN})
            assert await handlers.check_deadlines(monday + timedelta(days=4, hours=1)) == 0  # never twice
            assert await handlers.check_deadlines(monday + timedelta(days=7, hours=1)) == 0  # next Monday: last day
            assert await handlers.check_deadlines(monday + timedelta(days=8)) == 1  # Tuesday: missed (as analytics)
            await eventually(lambda: set(mail.of_kind("deadline-missed")) == {OFFICE})
            assert await handlers.check_deadlines(monday + timedelta(days=20)) == 0
            await sent.wait_for(lambda rs: sum(b'"email"' in r.value for r in rs) >= 7 + 2 + 1)
    assert (
        f"senast {(monday + timedelta(days=7)).date().isoformat()}" in mail.of_kind("deadline-warning")[SARA]["Subject"]
    )
    assert mail.of_kind("deadline-warning")[JOHN]["Subject"].startswith("Reminder: acknowledge")
    assert len(mail.received) == 7 + 2 + 1


async def test_unsubscribe_link_turns_off_email_and_preferences_rebuild_from_their_topic(
    settings_for, topics, kafka_settings, test_id
):
    idea_id = str(uuid.uuid4())
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        app = create_app(settings)
        async with (
            running(app) as api,
            sealing(settings) as people,
            raw_producer(kafka_settings) as producer,
            probe(kafka_settings, topics.preferences) as preference_events,
            probe(kafka_settings, topics.notifications_sent) as sent,
        ):
            await publish(producer, topics.submitted, await people.submitted(idea_id, "Cykelbana"))
            await publish(producer, topics.routed, routed(idea_id, "Cykelbana", [("kirunabostader", None)], []))
            await eventually(lambda: mail.to(ANNA))
            link = mail.to(ANNA)[0]["List-Unsubscribe"].strip("<>").replace("https://notifications.kiruna.se", "")
            assert link in body(mail.to(ANNA)[0], "plain") and link in body(mail.to(ANNA)[0], "html")
            expires = int(link.rsplit("token=", 1)[1].split(".")[1])  # the link's expiry, inside the signed part
            assert abs(expires - (time.time() + 60 * 86400)) < 600
            bad = await api.get(link.replace("token=", "token=x"))
            assert bad.status_code == 400 and "Länken fungerar inte" in bad.text
            # a mail scanner that follows the link changes nothing: GET only asks to confirm, Swedish first
            for _ in range(2):
                page = await api.get(link)
                assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
                assert page.text.index("<h1>Avsluta e-post") < page.text.index("<h2>Stop e-mail")
                assert '<form method="post"' in page.text and "<script" not in page.text and "style=" not in page.text
                assert page.headers["referrer-policy"] == "no-referrer"
                assert "a***@kiruna.se får i dag e-post" in page.text and ANNA not in page.text  # masked
            prefs = (await api.get("/api/v1/people/me/preferences", headers=bearer(ANNA_USER))).json()
            assert prefs["channels"] == ["email", "in-app"]
            answer = await api.post(link, content="List-Unsubscribe=One-Click")  # RFC 8058 one-click
            assert answer.status_code == 200 and "inte längre e-post" in answer.text
            prefs = (await api.get("/api/v1/people/me/preferences", headers=bearer(ANNA_USER))).json()
            assert prefs["channels"] == ["in-app"]
            [record] = await preference_events.wait_count(1)
            event, anna = json.loads(record.value), pseudonym_of(app, ANNA)
            assert record.key == anna.encode() and event["subject"] == anna and event["data"]["via"] == "unsubscribe"
            assert event["data"]["person"] == anna and not addresses_in(record.value, ANNA)  # the contact sealed

            await publish(producer, topics.status_changed, status(idea_id, IdeaState.IN_ASSESSMENT, None))
            feed = await eventually(lambda: _items(app, ANNA, 2))
            assert feed[0]["kind"] == "status-changed"
            off = await sent.wait_for(lambda rs: any(b"e-mail off" in r.value for r in rs))
            assert [o["recipient"] for o in outcomes_of(off) if o.get("detail") == "preference: e-mail off"] == [anna]
            assert len(mail.to(ANNA)) == 1  # the in-app feed got the news, e-mail did not
            bad = await api.put("/api/v1/people/me/preferences", json={"areas": ["månen"]}, headers=bearer(ANNA_USER))
            assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "areas"
        # a fresh Redis (another key prefix) rebuilds everyone's preferences from the topic
        rebuilt = settings_for(mail.port, redis_prefix=f"rebuilt{test_id}", group_id=f"rebuild-{test_id}")
        fresh_app = create_app(rebuilt)
        async with running(fresh_app) as fresh:

            async def rebuilt_prefs():
                answer = await fresh.get("/api/v1/people/me/preferences", headers=bearer(ANNA_USER))
                return answer.json()["channels"] == ["in-app"]

            await eventually(rebuilt_prefs, timeout=30)
            redis = fresh_app.state.runtime.redis
            keys = [k async for k in redis.scan_iter(match=f"rebuilt{test_id}:*")]
            await redis.delete(*keys)


async def test_an_expired_or_old_unsubscribe_link_gets_a_clear_page_and_changes_nothing(settings_for, topics):
    app = create_app(settings_for(free_port()))
    anna = pseudonym_of(app, ANNA)
    past = domain.unsubscribe_token(anna, "test-secret", datetime.now(UTC) - timedelta(seconds=1))
    person = past.split(".")[0]
    old = f"{person}.{past.split('.')[2]}"  # the first format: no expiry (those links never expired)
    async with running(app) as api:
        for token, says in ((past, "gått ut"), (old, "äldre e-postmeddelande")):
            for method in ("GET", "POST"):
                answer = await api.request(method, "/api/v1/unsubscribe", params={"token": token})
                assert answer.status_code == 400, (method, answer.text)
                assert answer.headers["content-type"].startswith("text/html") and says in answer.text
                assert answer.text.index("Länken fungerar inte") < answer.text.index("This link does not work")
        assert (await app.state.handlers.store.preferences(anna)).channels == {"email", "in-app"}  # not changed


async def _items(app, person: str, count: int):
    """A person's feed (by address), read from the store: people who only receive mail have no sign-in to read it
    with."""
    items = await app.state.handlers.store.feed(pseudonym_of(app, person), 50)
    return items if len(items) >= count else None


async def test_new_feed_items_stream_as_server_sent_events(settings_for, topics, kafka_settings):
    idea_id = str(uuid.uuid4())
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        app = create_app(settings)
        async with running(app) as api, sealing(settings) as people, raw_producer(kafka_settings) as producer:
            stream = asyncio.create_task(
                api.get("/api/v1/people/me/stream", params={"limit": 1}, headers=bearer(ANNA_USER))
            )
            await eventually(lambda: app.state.streams.count == 1)  # the stream is open, on the one subscription
            await publish(producer, topics.submitted, await people.submitted(idea_id, "Strömmad"))
            await publish(producer, topics.routed, routed(idea_id, "Strömmad", [("kirunabostader", None)], []))
            answer = await asyncio.wait_for(stream, timeout=30)
    assert answer.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in answer.text.replace("\r\n", "\n").split("\n\n") if "\nid: " in f"\n{f}"]
    assert len(frames) == 1 and "event: notification" in frames[0]
    item = json.loads(frames[0].split("data: ", 1)[1].split("\n", 1)[0])
    assert item["idea_id"] == idea_id and item["text"].startswith("Din idé ”Strömmad”")


async def test_effect_marks_expire_after_the_redelivery_window_and_rebuildable_state_stays(
    settings_for, topics, kafka_settings
):
    """Delivered, given-up, digest-sent and already-handled marks are effect keys: they expire after
    ``EFFECT_KEY_TTL_S`` (longer than any redelivery window); feeds, preferences and idea facts are rebuildable
    state and do not expire."""
    idea_id = str(uuid.uuid4())
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        ttl = settings.effect_key_ttl_s
        app = create_app(settings)
        async with running(app) as api, sealing(settings) as people, raw_producer(kafka_settings) as producer:
            await publish(producer, topics.submitted, await people.submitted(idea_id, "Utgående nycklar"))
            await publish(producer, topics.routed, routed(idea_id, "Utgående nycklar", [("kirunabostader", None)], []))
            await eventually(lambda: mail.to(ANNA))
            await eventually(lambda: _items(app, ANNA, 1))
            day = date.today() - timedelta(days=3)
            answer = await api.post(f"/api/v1/digests/{day.isoformat()}", headers=bearer(ADMIN))
            assert answer.status_code == 200
            redis, prefix = app.state.runtime.redis, f"{settings.redis_prefix}"

            async def ttls(pattern: str) -> dict[str, int]:
                keys = [k async for k in redis.scan_iter(match=f"{prefix}:{pattern}")]
                return {k: await redis.ttl(k) for k in keys}

            async def marked() -> dict[str, dict[str, int]]:
                found = {
                    "delivered": await ttls("notifications:delivered:*"),
                    "done": await ttls("done:notifications:*"),
                    "digest": await ttls(f"notifications:digest:{day.isoformat()}:done"),
                }
                return found if all(found.values()) else None

            effects = await eventually(marked)
            for kind, keys in effects.items():
                for key, left in keys.items():
                    assert 0 < left <= ttl and left > ttl - 600, (kind, key, left)
            state = {
                **await ttls(f"notifications:feed:{pseudonym_of(app, ANNA)}"),
                **await ttls(f"notifications:idea:{idea_id}*"),
            }
            assert state and all(left == -1 for left in state.values()), state
