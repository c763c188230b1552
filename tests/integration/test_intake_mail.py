"""E-mail in through a real SMTP client to intake's real listener, on the real Kafka."""

from __future__ import annotations

import json
import smtplib
import socket
from email.message import EmailMessage

import anyio
import pytest

from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from tests.support.apps import running
from tests.support.kafka import probe

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
) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "ideas@localhost", subject
    if message_id:
        message["Message-ID"] = message_id
    message.set_content(body)
    return message


def send(port: int, message: EmailMessage, to: str = "ideas@localhost") -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        try:
            client.send_message(message, to_addrs=[to])
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = exc.recipients[to]
            return code, reply.decode()
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, exc.smtp_error.decode()
        code, reply = client.noop()
        return 250, "accepted"


async def test_a_mail_to_the_idea_address_becomes_an_idea(service_settings, topics, kafka_settings):
    port = free_port()
    settings = service_settings(IntakeSettings, smtp_port=port)
    async with running(intake_app(settings)), probe(kafka_settings, topics.submitted) as submitted:
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
        assert event["submitter"] == {"name": "Karin Mäkitalo", "email": "karin.makitalo@kirunabostader.se"}
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
