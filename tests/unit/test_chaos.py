"""The pure parts of the fault suite (chaos/): the invariants it holds every scenario to, its report's last line,
the retry delay of its clients, and the tokens of its local issuer, verified by the platform's own verifier."""

from __future__ import annotations

import httpx
import pytest

from chaos.invariants import Mail, Outcome, RoutedRecord, event_duplicates, mail_findings, unrouted
from chaos.issuer import AUDIENCE, Issuer, Person
from chaos.load import retry_delay
from chaos.report import last_line, table
from shared.oidc import OidcSettings, TokenVerifier, Unauthenticated

ROUTED = "p.ideas.routed.v1"
ORG = "p.org.tekniska-verken.ideas.v1"


def test_one_record_per_decision_is_no_duplicate():
    records = [RoutedRecord(ROUTED, "e1", "i1"), RoutedRecord(ORG, "e1", "i1"), RoutedRecord(ROUTED, "e2", "i2")]
    found = event_duplicates(records)
    assert (found.same_event_id, found.same_decision, found.by_topic) == (0, 0, {})


def test_a_record_repeated_with_its_id_is_counted_both_ways():
    records = [RoutedRecord(ORG, "e1", "i1"), RoutedRecord(ORG, "e1", "i1"), RoutedRecord(ORG, "e1", "i1")]
    found = event_duplicates(records)
    assert (found.same_event_id, found.same_decision, found.by_topic) == (2, 2, {ORG: 2})


def test_an_idea_routed_twice_under_two_ids_is_a_duplicate_decision_but_a_reroute_is_not():
    twice = [RoutedRecord(ROUTED, "e1", "i1"), RoutedRecord(ROUTED, "e9", "i1")]
    assert event_duplicates(twice).same_decision == 1 and event_duplicates(twice).same_event_id == 0
    rerouted = [RoutedRecord(ROUTED, "e1", "i1"), RoutedRecord(ROUTED, "e2", "i1", decision="innovation.office")]
    assert event_duplicates(rerouted).same_decision == 0


def test_unrouted_ideas_are_those_missing_from_the_routed_topic():
    records = [RoutedRecord(ORG, "e1", "i1"), RoutedRecord(ROUTED, "e2", "i2")]
    assert unrouted({"i1", "i2"}, records, {ROUTED}) == {"i1"}


def mail(message_id: str, to: str, kind: str = "routed") -> Mail:
    return Mail(message_id=message_id, recipient=to, kind=kind, idea_id="i")


def test_each_submitter_with_one_routed_mail_passes():
    mails = [mail("<a@k>", "anna@kiruna.se"), mail("<b@k>", "per@kiruna.se"), mail("<c@k>", "erik@tv.se")]
    found = mail_findings(mails, {"Anna@kiruna.se", "per@kiruna.se"})
    assert (found.duplicates, found.without_routed) == (0, set())


def test_the_same_mail_twice_and_two_routed_mails_are_duplicates_and_a_silent_submitter_is_missing():
    mails = [
        mail("<a@k>", "anna@kiruna.se"),
        mail("<a@k>", "anna@kiruna.se"),  # delivered twice: one Message-ID, two files
        mail("<b1@k>", "per@kiruna.se"),
        mail("<b2@k>", "per@kiruna.se"),  # told twice: two routed mails
        mail("<s@k>", "sara@kiruna.se", kind="status-changed"),
    ]
    found = mail_findings(mails, {"anna@kiruna.se", "per@kiruna.se", "sara@kiruna.se"})
    assert found.files - found.distinct == 1
    assert found.extra_routed == {"per@kiruna.se": 1}
    assert found.duplicates == 2
    assert found.without_routed == {"sara@kiruna.se"}


def test_an_outcome_fails_naming_each_broken_invariant_and_the_last_line_sums_them():
    good = Outcome("kill-analytics", accepted=2000, recovery_s=4.25)
    bad = Outcome("kafka-stall", accepted=1990, lost=1, duplicate_org_events=16, recovery_s=12.0)
    for outcome in (good, bad):
        outcome.check()
    assert good.passed and not bad.passed
    assert bad.problems == [
        "1 acknowledged ideas missing from analytics",
        "16 routing decisions on a topic more than once",
    ]
    assert last_line([good, bad]) == (
        "scenarios=2 accepted=3990 lost=1 duplicate_mails=0 duplicate_org_events=16 unexpected_dlq=0 "
        "max_recovery_s=12.0"
    )
    assert "kafka-stall: 16 routing decisions" in table([good, bad])


def test_retries_honour_retry_after_up_to_the_cap():
    assert retry_delay(httpx.Response(503, headers={"Retry-After": "5"}), cap_s=2) == 2
    assert retry_delay(httpx.Response(409, headers={"Retry-After": "1"}), cap_s=2) == 1
    assert retry_delay(None, cap_s=2) == 0.5  # a refused connection
    assert retry_delay(httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015"}), cap_s=2) == 0.5


def verifier_of(issuer: Issuer) -> TokenVerifier:
    """The platform's verifier, fetching the issuer's documents in memory."""

    def provider(request: httpx.Request) -> httpx.Response:
        documents = {"/chaos/.well-known/openid-configuration": issuer.discovery(), "/chaos/certs": issuer.jwks()}
        return httpx.Response(200, json=documents[request.url.path])

    http = httpx.AsyncClient(transport=httpx.MockTransport(provider))
    return TokenVerifier(OidcSettings(issuer_url=issuer.url, audience=AUDIENCE), http=http)


async def test_the_local_issuers_tokens_verify_with_the_platforms_verifier_as_that_person():
    issuer = Issuer("http://127.0.0.1:1/chaos")
    principal = await verifier_of(issuer).verify(issuer.token(Person(7)))
    assert principal.id == "chaos.person0007" and principal.email == "chaos.person0007@kiruna.se"
    assert principal.organisation == "kiruna-kommun" and principal.name == "Chaos Person 0007"


async def test_an_expired_token_of_the_local_issuer_is_refused():
    issuer = Issuer("http://127.0.0.1:1/chaos")
    with pytest.raises(Unauthenticated, match="expired"):
        await verifier_of(issuer).verify(issuer.token(Person(1), lifetime_s=60, now=0))
