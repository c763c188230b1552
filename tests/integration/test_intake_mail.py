"""E-mail in through a real SMTP client to intake's real listener, on the real Kafka."""

from __future__ import annotations

import json
import shutil
import smtplib
import socket
from email.message import EmailMessage

import anyio
import pytest

from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from shared.catalogue import DEFAULT_CATALOGUE_PATH
from shared.events import PersonRef
from tests.support.apps import running
from tests.support.kafka import eventually, probe

pytestmark = pytest.mark.kafka


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mail(
    subject: str,
    body: str,
    sender: str = "Karin Mäkitalo <karin.makitalo@kirunabostader.se>",
    message_id: str | None = None,
    authentication_results: str | None = None,
) -> EmailMessage:
    message = EmailMessage()
    if authentication_results:  # the receiving mail server puts its verdict on top
        message["Authentication-Results"] = authentication_results
    message["From"], message["To"], message["Subject"] = sender, "ideas@localhost", subject
    if message_id:
        message["Message-ID"] = message_id
    message.set_content(body)
    return message


def send(
    port: int, message: EmailMessage, to: str = "ideas@localhost", mail_from: str | None = None
) -> tuple[int, str]:
    """Send like a mail server (MAIL FROM is the From address unless given); return the reply code and text."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        try:
            client.send_message(message, from_addr=mail_from, to_addrs=[to])
        except smtplib.SMTPSenderRefused as exc:
            return exc.smtp_code, exc.smtp_error.decode()
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = exc.recipients[to]
            return code, reply.decode()
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, exc.smtp_error.decode()
        code, reply = client.noop()
        return 250, "accepted"


async def stored_ideas(app, redis_prefix: str) -> list[str]:
    redis = app.state.runtime.redis
    return [key async for key in redis.scan_iter(match=f"{redis_prefix}:intake:idea:*")]


async def submitter_of(app, event: dict) -> dict:
    """The submitter of an IdeaSubmitted's data, opened with the keyring: name and address (and organisation)."""
    keyring = app.state.runtime.keyring
    submitter = PersonRef.model_validate(event["submitter"])
    found = await keyring.open_json(submitter.sealed)
    assert submitter.pseudonym == keyring.pseudonym(found["email"])  # the pseudonym of the sealed address
    return {**found, **({"organisation": submitter.organisation} if submitter.organisation else {})}


def refused(metrics: str, reason: str) -> float:
    line = next(
        line
        for line in metrics.splitlines()
        if line.startswith(f'kiruna_intake_mail_refused_total{{reason="{reason}"}}')
    )
    return float(line.rsplit(" ", 1)[1])


async def test_a_mail_to_the_idea_address_becomes_an_idea(service_settings, topics, kafka_settings):
    port = free_port()
    settings = service_settings(IntakeSettings, smtp_port=port)
    app = intake_app(settings)
    async with running(app), probe(kafka_settings, topics.submitted) as submitted:
        body = "Trapphusen är mörka på vintern.\nSätt rörelsevakter på belysningen.\n-- \nKarin, Kirunabostäder"
        code, _ = await anyio.to_thread.run_sync(
            send, port, mail("Bättre belysning i trapphusen", body, message_id="<m1@kirunabostader.se>")
        )
        assert code == 250
        # the sending server retries the same mail: the Message-ID makes it the same idea, published once
        await anyio.to_thread.run_sync(
            send, port, mail("Bättre belysning i trapphusen", body, message_id="<m1@kirunabostader.se>")
        )
        event = json.loads((await submitted.wait_count(1))[0].value)["data"]
        assert event["title"] == "Bättre belysning i trapphusen"
        assert event["description"] == "Trapphusen är mörka på vintern.\nSätt rörelsevakter på belysningen."
        # kirunabostader.se is the mail domain of one organisation only: it names the submitter's organisation
        assert await submitter_of(app, event) == {
            "name": "Karin Mäkitalo",
            "email": "karin.makitalo@kirunabostader.se",
            "organisation": "kirunabostader",
        }
        assert "karin" not in json.dumps(event).lower()  # sealed: neither the name nor the address in the clear
        assert event["channel"] == "email" and event["language"] == "sv"
        code, _ = await anyio.to_thread.run_sync(send, port, mail("Ännu en idé om belysning", "Text"))
        await submitted.wait_count(2)
        assert len(submitted.records) == 2


async def test_mail_that_cannot_become_an_idea_is_refused_with_the_reason(service_settings, topics):
    port = free_port()
    async with running(intake_app(service_settings(IntakeSettings, smtp_port=port))):
        code, reply = await anyio.to_thread.run_sync(send, port, mail("Hej", "x"), "someone@localhost")
        assert code == 550 and "ideas@localhost" in reply
        code, reply = await anyio.to_thread.run_sync(send, port, mail("", "Ett förslag utan ämne"))
        assert code == 550 and "subject" in reply
        code, reply = await anyio.to_thread.run_sync(send, port, mail("Långt", "x" * 10_001))
        assert code == 550 and "body" in reply


async def test_mail_from_outside_the_group_or_failing_dmarc_is_refused_and_nothing_is_stored(
    service_settings, topics, kafka_settings, redis_prefix
):
    port = free_port()
    app = intake_app(service_settings(IntakeSettings, smtp_port=port))
    async with running(app) as client, probe(kafka_settings, topics.submitted) as submitted:
        metrics = (await client.get("/metrics")).text
        assert all(refused(metrics, reason) == 0 for reason in ("domain", "dmarc", "sender"))  # visible from the start

        idea = ("Gratis kaffe", "Bjud alla på kaffe.")
        code, reply = await anyio.to_thread.run_sync(send, port, mail(*idea, sender="Eve <eve@example.com>"))
        assert code == 550 and "5.7.1" in reply and "example.com" in reply and "kiruna.se" in reply
        # a subdomain is not its parent, a look-alike is not the domain
        for foreign in ("eve@mail.kirunabostader.se", "eve@kiruna.se.example.com"):
            code, reply = await anyio.to_thread.run_sync(send, port, mail(*idea, sender=foreign))
            assert code == 550 and "5.7.1" in reply, foreign
        # a From of the group does not help when the envelope sender is foreign (refused at MAIL FROM)
        code, reply = await anyio.to_thread.run_sync(
            lambda: send(port, mail(*idea, sender="anna@kiruna.se"), mail_from="bounce@example.com")
        )
        assert code == 550 and "example.com" in reply
        # nor the other way round (refused at DATA)
        code, reply = await anyio.to_thread.run_sync(
            lambda: send(port, mail(*idea, sender="eve@example.com"), mail_from="anna@kiruna.se")
        )
        assert code == 550 and "example.com" in reply
        # a bounce or an auto-reply (the empty sender) is no idea
        code, reply = await anyio.to_thread.run_sync(
            lambda: send(port, mail(*idea, sender="postmaster@kiruna.se"), mail_from="")
        )
        assert code == 550 and "empty sender" in reply
        # the receiving mail server says DMARC failed
        dmarc_failed = mail(
            *idea,
            sender="Anna Svensson <anna.svensson@kiruna.se>",
            authentication_results="mx.kiruna.se; spf=fail smtp.mailfrom=kiruna.se; dmarc=fail header.from=kiruna.se",
        )
        code, reply = await anyio.to_thread.run_sync(send, port, dmarc_failed)
        assert code == 550 and reply.startswith("5.7.1 DMARC failed for kiruna.se")

        metrics = (await client.get("/metrics")).text
        assert (refused(metrics, "domain"), refused(metrics, "sender"), refused(metrics, "dmarc")) == (5, 1, 1)
        assert await stored_ideas(app, redis_prefix) == []

        # the same idea from the group, passing DMARC, is taken; it is the only one published
        passed = mail(
            *idea,
            sender="Anna Svensson <anna.svensson@kiruna.se>",
            authentication_results="mx.kiruna.se; dkim=pass header.d=kiruna.se; dmarc=pass header.from=kiruna.se",
        )
        code, _ = await anyio.to_thread.run_sync(send, port, passed)
        assert code == 250
        event = json.loads((await submitted.wait_count(1))[0].value)["data"]
        # kiruna.se is shared by the municipality and the innovation office: no organisation is guessed
        assert await submitter_of(app, event) == {"name": "Anna Svensson", "email": "anna.svensson@kiruna.se"}
        assert len(await stored_ideas(app, redis_prefix)) == 1 and len(submitted.records) == 1


async def test_the_domain_is_not_case_sensitive(service_settings, topics, kafka_settings):
    port = free_port()
    app = intake_app(service_settings(IntakeSettings, smtp_port=port))
    async with running(app), probe(kafka_settings, topics.submitted) as submitted:
        message = mail(
            "Laddstolpar vid kontoret", "Fler laddplatser.", sender="Erik <Erik.Lindberg@TekniskaVerken.Kiruna.SE>"
        )
        code, _ = await anyio.to_thread.run_sync(send, port, message)
        assert code == 250
        event = json.loads((await submitted.wait_count(1))[0].value)["data"]
        submitter = await submitter_of(app, event)
        assert submitter["email"] == "erik.lindberg@tekniskaverken.kiruna.se"
        assert submitter["organisation"] == "tekniska-verken"


async def test_the_accepted_domains_follow_the_catalogue_in_use(service_settings, topics, kafka_settings, tmp_path):
    path = tmp_path / "catalogue.toml"
    shutil.copy(DEFAULT_CATALOGUE_PATH, path)
    port = free_port()
    settings = service_settings(IntakeSettings, smtp_port=port, catalogue_path=path, catalogue_check_interval_s=0.1)
    app = intake_app(settings)
    async with running(app), probe(kafka_settings, topics.submitted) as submitted:
        message = mail("Samåkning till gruvan", "En app för samåkning.", sender="Bo <bo@skola.kiruna.se>")
        code, _ = await anyio.to_thread.run_sync(send, port, message)
        assert code == 550

        text = path.read_text(encoding="utf-8")
        path.write_text(
            text.replace('mail_domains = ["kiruna.se"]', 'mail_domains = ["kiruna.se", "skola.kiruna.se"]', 1)
        )

        async def accepted() -> bool:
            return (await anyio.to_thread.run_sync(send, port, message))[0] == 250

        await eventually(accepted, timeout=10)
        event = json.loads((await submitted.wait_count(1))[0].value)["data"]
        assert event["submitter"]["organisation"] == "kiruna-kommun"  # skola.kiruna.se is the municipality's alone


def send_on_one_connection(port: int, messages: list[EmailMessage]) -> list[tuple[int, str]]:
    """Send every message over one SMTP connection, as a mail server empties its queue; each reply."""
    replies: list[tuple[int, str]] = []
    with smtplib.SMTP("127.0.0.1", port, local_hostname="localhost", timeout=10) as client:
        for message in messages:
            try:
                client.send_message(message, to_addrs=["ideas@localhost"])
                replies.append((250, "accepted"))
            except smtplib.SMTPSenderRefused as exc:
                replies.append((exc.smtp_code, exc.smtp_error.decode()))
                if exc.smtp_code == 421:
                    break  # the server ended the connection
    return replies


async def test_mail_is_rate_limited_per_sender_and_per_connection(service_settings, topics, kafka_settings):
    port = free_port()
    settings = service_settings(IntakeSettings, smtp_port=port, mail_per_sender_per_hour=2, mail_per_connection=3)
    async with running(intake_app(settings)) as client, probe(kafka_settings, topics.submitted) as submitted:
        assert refused((await client.get("/metrics")).text, "rate-limited") == 0  # visible from the start
        anna = "Anna Svensson <anna.svensson@kiruna.se>"
        for n in range(2):
            code, _ = await anyio.to_thread.run_sync(send, port, mail(f"Idé nummer {n}", "Text", sender=anna))
            assert code == 250
        # the third within the hour, whatever the case of the address: a temporary refusal that says when
        shouting = mail("Idé nummer 3", "Text", sender="Anna <Anna.Svensson@KIRUNA.SE>")
        code, reply = await anyio.to_thread.run_sync(send, port, shouting)
        assert code == 451 and reply.startswith("4.7.1") and "at most 2 per hour" in reply
        wait = int(reply.rsplit("try again in ", 1)[1].split()[0])
        assert 1 <= wait <= 3600
        code, _ = await anyio.to_thread.run_sync(send, port, mail("Per har en idé", "Text", sender="per@kiruna.se"))
        assert code == 250

        # one connection carries at most 3 mails; the 4th MAIL is answered 421 and the connection ends
        senders = [f"person{n}@kirunabostader.se" for n in range(5)]
        batch = [mail(f"Idé från {s}", "Text", sender=s) for s in senders]
        replies = await anyio.to_thread.run_sync(send_on_one_connection, port, batch)
        assert [code for code, _ in replies] == [250, 250, 250, 421]
        assert "At most 3 mails per connection" in replies[3][1]

        await submitted.wait_count(6)
        assert refused((await client.get("/metrics")).text, "rate-limited") == 2
