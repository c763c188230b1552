"""Who may send ideas by e-mail, decided from the mail alone: the group's mail domains and the receiving server's
DMARC verdict in Authentication-Results (RFC 8601)."""

from __future__ import annotations

import email.policy
import logging
from email.message import EmailMessage
from types import SimpleNamespace

import pytest
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from prometheus_client import CollectorRegistry

from services.intake.handlers import Intake
from services.intake.mail import (
    IdeaMailbox,
    Refusal,
    Sender,
    dmarc_refusal,
    dmarc_results,
    envelope_sender_refusal,
    mail_domain,
    mail_domain_owners,
    parse_authentication_results,
    sender_of,
)
from services.intake.settings import IntakeSettings
from shared.catalogue import load_catalogue
from shared.topics import Topics
from tests.fakes.common import FakeKeyring, FakePublisher
from tests.fakes.intake import FakeIntakeStore

OWNERS = mail_domain_owners(load_catalogue())


def message(*from_values: str) -> EmailMessage:
    raw = "".join(f"From: {value}\r\n" for value in from_values) + "Subject: Idé\r\n\r\nText\r\n"
    return email.message_from_bytes(raw.encode(), _class=EmailMessage, policy=email.policy.default)


# --- Authentication-Results -----------------------------------------------------------------------------------


def test_an_authentication_results_header_is_read_method_by_method():
    parsed = parse_authentication_results(
        "mx.kiruna.se 1; spf=pass smtp.mailfrom=kiruna.se; dkim=pass header.d=kiruna.se header.s=sel1;\r\n"
        " DMARC=Fail (p=reject dis=none) header.from=kiruna.se"
    )
    assert parsed is not None
    assert parsed.authserv_id == "mx.kiruna.se"
    assert parsed.results == (("spf", "pass"), ("dkim", "pass"), ("dmarc", "fail"))


def test_comments_quoted_strings_and_method_versions_do_not_confuse_the_parser():
    parsed = parse_authentication_results(
        'mx.kiruna.se (a comment; with (nested) parts "and quotes); '
        'auth/1=pass smtp.auth="a;b"; dmarc (checked) = (by us) pass header.from=kiruna.se'
    )
    assert parsed is not None and parsed.results == (("auth", "pass"), ("dmarc", "pass"))
    assert parse_authentication_results('"mx.kiruna.se"; dmarc=fail').authserv_id == "mx.kiruna.se"


def test_no_result_and_an_empty_header():
    assert parse_authentication_results("mx.kiruna.se; none").results == ()
    assert parse_authentication_results("  (only a comment) ") is None


def test_dmarc_results_are_taken_only_from_the_trusted_server_when_one_is_named():
    headers = ["mx.kiruna.se; dmarc=pass header.from=kiruna.se", "relay.example.com; dmarc=fail"]
    assert dmarc_results(headers) == ("pass", "fail")
    assert dmarc_results(headers, "MX.Kiruna.se") == ("pass",)
    assert dmarc_results(headers, "other.example") == ()


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ([], False),  # the local sink checks nothing and adds no header
        (["mx.kiruna.se; dmarc=none"], False),
        (["mx.kiruna.se; dmarc=pass"], False),
        (["mx.kiruna.se; dmarc=temperror"], False),
        (["mx.kiruna.se; spf=fail; dkim=fail"], False),  # DMARC decides, not SPF or DKIM alone
        (["mx.kiruna.se; dmarc=fail"], True),
        (["mx.kiruna.se; dmarc=permerror"], True),
        (["mx.kiruna.se; dmarc=pass", "mx.kiruna.se; dmarc=fail"], True),
    ],
)
def test_dmarc_fail_and_permerror_refuse_a_mail(headers, refused):
    refusal = dmarc_refusal(headers, "", "kiruna.se")
    assert (refusal is not None) == refused
    if refusal:
        assert refusal.reason == "dmarc" and refusal.reply.startswith("550 5.7.1 DMARC")
        assert "kiruna.se" in refusal.reply and refusal.domain == "kiruna.se"


# --- the group's mail domains ---------------------------------------------------------------------------------


def test_a_domain_shared_by_two_organisations_names_neither():
    assert OWNERS["kiruna.se"] == ("kiruna-kommun", "innovationsplattformen")
    assert OWNERS["kirunabostader.se"] == ("kirunabostader",)


def test_the_domain_is_compared_exactly_and_case_insensitively():
    assert mail_domain("Anna.Svensson@Kiruna.SE") == "kiruna.se"
    assert mail_domain("no-domain") == mail_domain("@kiruna.se") == ""
    sender = sender_of(message("Anna Svensson <Anna.Svensson@KIRUNA.SE>"), OWNERS)
    assert sender == Sender("Anna Svensson", "Anna.Svensson@KIRUNA.SE", "kiruna.se", None)
    assert sender_of(message("sara@kirunabostader.se"), OWNERS).organisation == "kirunabostader"
    for foreign in ("x@kiruna.se.example.com", "x@evil-kiruna.se", "x@skola.kiruna.se", "x@example.com"):
        refusal = sender_of(message(foreign), OWNERS)
        assert isinstance(refusal, Refusal) and refusal.reason == "domain", foreign
        assert refusal.reply.startswith("550 5.7.1") and refusal.domain == foreign.partition("@")[2]
        assert "kirunabostader.se" in refusal.reply


@pytest.mark.parametrize(
    "from_values",
    [
        (),
        ("not an address",),
        ("a@kiruna.se, b@kiruna.se",),
        ("a@kiruna.se", "b@kiruna.se"),
        ("a@kiruna.se <b@evil.com>",),  # read as a@kiruna.se by Python's lenient parser, b@evil.com by mail programs
        ("Karin <karin@evil.com> <karin@kiruna.se>",),
    ],
)
def test_a_from_header_that_is_missing_or_ambiguous_is_refused(from_values):
    refusal = sender_of(message(*from_values), OWNERS)
    assert isinstance(refusal, Refusal) and refusal.reason in ("sender", "domain")
    assert refusal.reply.startswith("550 5.7.1")


def test_a_quoted_address_in_the_name_is_only_a_name():
    refusal = sender_of(message('"a@kiruna.se" <b@evil.com>'), OWNERS)
    assert isinstance(refusal, Refusal) and refusal.reason == "domain" and refusal.domain == "evil.com"


def test_an_encoded_name_is_decoded():
    sender = sender_of(message("=?utf-8?q?Karin_M=C3=A4kitalo?= <karin@kirunabostader.se>"), OWNERS)
    assert isinstance(sender, Sender) and sender.name == "Karin Mäkitalo"


def test_the_envelope_sender_must_be_in_a_domain_of_the_group_and_not_empty():
    assert envelope_sender_refusal("bounces@tekniskaverken.kiruna.se", OWNERS) is None
    assert envelope_sender_refusal("Anna@Kiruna.se", OWNERS) is None
    assert envelope_sender_refusal("anna@example.com", OWNERS).reason == "domain"
    assert envelope_sender_refusal("", OWNERS).reason == envelope_sender_refusal("<>", OWNERS).reason == "sender"


# --- what the door keeps and logs -----------------------------------------------------------------------------


async def test_the_door_logs_no_address_and_counts_a_sender_by_pseudonym(caplog):
    keyring = FakeKeyring()
    store = FakeIntakeStore()
    intake = Intake(
        FakePublisher(),
        store,
        load_catalogue(),
        keyring,
        topics=Topics(),
        public_base_url="http://status.test",
        idempotency_ttl_s=3600,
        logger=logging.getLogger("intake-mail-test"),
    )
    mailbox = IdeaMailbox(intake, IntakeSettings(), registry=CollectorRegistry())
    session = SimpleNamespace(peer=("127.0.0.1", 2525))
    caplog.set_level(logging.INFO, logger="intake-mail-test")

    envelope = SmtpEnvelope()
    assert await mailbox.handle_MAIL(None, session, envelope, "Anna.Svensson@kiruna.se", []) == "250 2.1.0 OK"
    reply = await mailbox.handle_RCPT(None, session, envelope, "anna.svensson@kiruna.se", [])
    assert reply.startswith("550 5.1.1 <anna.svensson@kiruna.se>")  # the sender is told what they sent

    assert [name for name, _, _ in store.counts] == [f"mail-sender:{keyring.pseudonym('anna.svensson@kiruna.se')}"]
    [refused] = [r for r in caplog.records if r.getMessage() == "mail refused"]
    assert refused.reply.startswith("550 5.1.1 <a***@kiruna.se>") and refused.sender_domain == "kiruna.se"
    assert "svensson" not in repr(vars(refused)).lower()
