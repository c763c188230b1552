"""What a delivery keeps and tells, without Redis or a mail server: no address in a queued delivery, its dead
letter or its errors; deliveries queued before people were pseudonyms lose their addresses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import aiosmtplib
import pytest

from services.notifications import domain
from services.notifications.delivery.model import Delivery, without_address
from services.notifications.delivery.outcomes import describe
from services.notifications.delivery.senders import _masked, _rejection
from shared.sealing import pseudonym

ANNA = "anna.svensson@kiruna.se"
SECRET = "test-secret"


def p(email: str) -> str:
    return pseudonym(b"test-pseudonym-pepper", email)


def legacy(email: str = ANNA) -> Delivery:
    """An e-mail queued by the version before pseudonyms: the address as recipient, in ``to`` and in the link."""
    expires = datetime(2027, 1, 1, tzinfo=UTC)
    url = f"https://n.kiruna.se/api/v1/unsubscribe?token={domain.unsubscribe_token(email, SECRET, expires)}"
    message = {
        "to": email,
        "subject": "Din idé",
        "text": f"Hej!\n\nAvsluta: {url}\n",
        "html": f'<a href="{url}">Avsluta</a>',
        "language": "sv",
        "unsubscribe_url": url,
    }
    return Delivery("n1", "email", email, "i1", "e1", "routed", message, attempts=2, last_error=f"refused {email}")


def test_a_delivery_queued_before_pseudonyms_loses_its_address_and_keeps_a_working_link():
    upgraded = without_address(legacy(), p, SECRET)
    assert upgraded is not None and upgraded.recipient == p(ANNA) and "to" not in upgraded.message
    raw = upgraded.to_json()
    assert ANNA not in raw and "anna.svensson" not in raw
    token = upgraded.message["unsubscribe_url"].rsplit("token=", 1)[1]
    assert domain.verify_unsubscribe_token(token, SECRET, datetime(2026, 12, 1, tzinfo=UTC)) == p(ANNA)
    assert upgraded.message["unsubscribe_url"] in upgraded.message["text"]
    assert upgraded.message["unsubscribe_url"] in upgraded.message["html"]
    assert upgraded.attempts == 2 and upgraded.last_error == "refused a***@kiruna.se"
    assert without_address(upgraded, p, SECRET) is None  # already without


def test_a_webhook_queued_before_names_its_organisation_as_webhook():
    hook = Delivery("n2", "webhook", "tekniska-verken", "i1", "e1", "routed", {"kind": "routed"})
    upgraded = without_address(hook, p, SECRET)
    assert upgraded.recipient == "webhook:tekniska-verken" and upgraded.organisation == "tekniska-verken"
    assert without_address(upgraded, p, SECRET) is None


def test_a_dead_letter_keeps_what_identifies_the_delivery_never_the_mail():
    delivery = without_address(legacy(), p, SECRET)
    record = delivery.investigation(describe(RuntimeError(f"550 <{ANNA}> unknown")))
    assert record == {
        "notification_id": "n1",
        "cause_event_id": "e1",
        "idea_id": "i1",
        "recipient": p(ANNA),
        "channel": "email",
        "kind": "routed",
        "language": "sv",
        "attempts": 2,
        "error": "RuntimeError: 550 <a***@kiruna.se> unknown",
    }
    assert ANNA not in json.dumps(record) and "Din idé" not in json.dumps(record)


@pytest.mark.parametrize(
    "error",
    [
        aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(550, f"<{ANNA}>: no such user", ANNA)]),
        aiosmtplib.SMTPResponseException(554, f"rejected {ANNA}"),
    ],
)
def test_a_mail_servers_refusal_is_told_with_the_address_masked(error):
    rejected = _rejection(error)
    assert rejected is not None and ANNA not in str(rejected) and "a***@kiruna.se" in str(rejected)


def test_a_mail_servers_passing_trouble_is_retried_with_the_address_masked():
    error = aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(450, f"<{ANNA}> try later", ANNA)])
    assert _rejection(error) is None
    masked = _masked(error)
    assert ANNA not in str(masked) and "a***@kiruna.se" in describe(masked)
    plain = TimeoutError("timed out")
    assert _masked(plain) is plain


def test_the_unsubscribe_link_of_a_pseudonym_expires():
    now = datetime(2026, 3, 2, tzinfo=UTC)
    token = domain.unsubscribe_token(p(ANNA), SECRET, now + timedelta(days=1))
    assert domain.verify_unsubscribe_token(token, SECRET, now) == p(ANNA)


def test_a_mail_is_addressed_only_when_it_is_built_and_a_name_cannot_add_a_header():
    from services.notifications.delivery.model import Address
    from services.notifications.delivery.senders import Mailer
    from services.notifications.settings import NotificationsSettings

    delivery = without_address(legacy(), p, SECRET)
    mailer = Mailer(NotificationsSettings(), addresses=None)  # type: ignore[arg-type]
    mail = mailer.build(delivery, Address(ANNA, "Åsa\r\nBcc: x@evil.example"))
    assert mail["Bcc"] is None and "\n" not in mail["To"] and mail["To"].addresses[0].addr_spec == ANNA
    assert mail["To"].addresses[0].display_name == "Åsa Bcc: x@evil.example"


def test_a_mail_made_with_the_kept_header_classes_is_the_mail_the_plain_registry_makes():
    import re
    from email.headerregistry import HeaderRegistry

    from aiosmtplib.email import flatten_message

    from services.notifications.delivery import senders
    from services.notifications.delivery.model import Address
    from services.notifications.settings import NotificationsSettings

    delivery = without_address(legacy(), p, SECRET)
    mailer = senders.Mailer(NotificationsSettings(), addresses=None)  # type: ignore[arg-type]
    to = Address(ANNA, "Åsa Öberg")
    kept = [flatten_message(mailer.build(delivery, to)) for _ in range(2)]  # the second from the kept classes
    plain_policy = senders.MAIL_POLICY.clone(header_factory=HeaderRegistry())
    try:
        senders.MAIL_POLICY, saved = plain_policy, senders.MAIL_POLICY
        plain = flatten_message(mailer.build(delivery, to))
    finally:
        senders.MAIL_POLICY = saved
    unstable = re.compile(rb"Date: [^\r]*\r\n|=+\d+==")  # the time and the MIME boundary differ from mail to mail
    assert unstable.sub(b"", kept[0]) == unstable.sub(b"", kept[1]) == unstable.sub(b"", plain)
    assert isinstance(senders.MAIL_POLICY.header_factory, senders.KeptHeaderClasses)
