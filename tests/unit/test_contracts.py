"""Contracts: the .v2 events round-trip with their personal fields sealed; events written by older producers
still parse (the .v1 ones with shared/events_v1.py, what the migration reads); the people's events are keyed by
the pseudonym; unknown fields are tolerated; ids derive."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from shared.events import (
    EngagementEvent,
    EngagementKind,
    Envelope,
    ErasureRequestedEvent,
    IdeaEngagement,
    IdeaSubmitted,
    NotificationSent,
    NotificationSentEvent,
    PersonErasureRequested,
    PersonKeyEvent,
    PreferencesChanged,
    PreferencesChangedEvent,
    RerouteCommand,
    RoutedEvent,
    StatusChangedEvent,
    SubmittedEvent,
    derived_event_id,
    event_type,
)
from shared.events_v1 import (
    V1_TYPES,
    EngagementEventV1,
    NotificationSentEventV1,
    PreferencesChangedEventV1,
    SubmittedEventV1,
)
from shared.sealing import DataKey, KeyEncryptionKey, open_json, open_sealed, pseudonym

PEPPER = b"test-pepper-of-sixteen-or-more"
ANNA = "Anna.Svensson@kiruna.se"
NAME = "Anna Svensson"

# Exactly as the first v1 producers wrote them: these must keep parsing for as long as the .v1 topics exist (the
# migration reads them with shared/events_v1.py).
V1_SUBMITTED = """{"specversion":"1.0","id":"0b5d7c1e-9f0b-4f43-9a56-1d1f3d0c2a11","source":"/services/intake",
"type":"se.kiruna.innovation.idea.submitted.v1","time":"2026-11-27T09:00:00Z",
"subject":"5f0e0c7a-1111-4c3e-8d2b-0a9b8c7d6e5f","datacontenttype":"application/json",
"data":{"idea_id":"5f0e0c7a-1111-4c3e-8d2b-0a9b8c7d6e5f","title":"Fjärrvärme till badhuset",
"description":"Anslut badhuset.","language":"sv","area_hints":[],"organisation_hints":["tekniska-verken"],
"anonymous":false,"submitter":{"name":"Anna","email":"anna@kiruna.se","organisation":"kiruna-kommun"},
"channel":"web"}}"""
V1_ANONYMOUS = """{"specversion":"1.0","id":"a0","source":"/services/intake","type":"se.kiruna.innovation.idea.submitted.v1",
"time":"2026-11-27T09:00:00Z","subject":"i2","data":{"idea_id":"i2","title":"Snöröjning","description":"",
"anonymous":true}}"""
V1_ENGAGEMENT = """{"specversion":"1.0","id":"e1","source":"/services/intake","type":"se.kiruna.innovation.idea.engagement.v1",
"time":"2026-11-28T10:00:00Z","subject":"i1","data":{"idea_id":"i1","kind":"support","person":"per@kiruna.se"}}"""
V1_COMMENT = """{"specversion":"1.0","id":"e2","source":"/services/intake","type":"se.kiruna.innovation.idea.engagement.v1",
"time":"2026-11-28T10:05:00Z","subject":"i1","correlationid":"c1","data":{"idea_id":"i1","kind":"comment",
"person":"per@kiruna.se","text":"Bra idé!"}}"""
V1_SENT = """{"specversion":"1.0","id":"n1","source":"/services/notifications",
"type":"se.kiruna.innovation.notification.sent.v1","time":"2026-11-28T10:00:00Z","subject":"i1",
"data":{"idea_id":"i1","cause_event_id":"a1","recipient":"anna@kiruna.se","channel":"in-app","outcome":"delivered"}}"""
V1_PREFERENCES = """{"specversion":"1.0","id":"p1","source":"/services/notifications",
"type":"se.kiruna.innovation.notification.preferences-changed.v1","time":"2026-11-28T11:00:00Z",
"subject":"anna@kiruna.se","data":{"person":"anna@kiruna.se","channels":["in-app"],"frequency":"daily",
"areas":["boende"],"organisations":[],"language":"en","via":"unsubscribe"}}"""
# The contracts that did not change stay .v1 and are read by the current models.
V1_ROUTED = """{"specversion":"1.0","id":"a1","source":"/services/routing","type":"se.kiruna.innovation.idea.routed.v1",
"time":"2026-11-27T09:00:01Z","subject":"i1","data":{"idea_id":"i1","organisations":[{"organisation":
"tekniska-verken","unit":"energi","score":3.0}],"areas":[{"area":"klimat-och-energi","score":3.0}],
"reason":"'fjärrvärme' -> klimat-och-energi -> tekniska-verken/energi"}}"""
V1_STATUS = """{"specversion":"1.0","id":"s1","source":"/services/intake","type":"se.kiruna.innovation.idea.status-changed.v1",
"time":"2026-11-28T10:00:00+01:00","subject":"i1","data":{"idea_id":"i1","to_state":"declined",
"reason":"Finns redan","changed_by":"erik.lindberg"}}"""
V1_REROUTE = """{"specversion":"1.0","id":"r1","source":"/services/intake","type":"se.kiruna.innovation.command.reroute-idea.v1",
"time":"2026-11-28T10:00:00Z","subject":"i1","data":{"idea_id":"i1","organisations":[{"organisation":"kirunabostader"}],
"requested_by":"innovation.office","reason":"Gäller hyresgäster"}}"""


def key_of(person: str = ANNA) -> DataKey:
    return DataKey.new(pseudonym(PEPPER, person))


# --- the .v1 history: old events still parse -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "raw"),
    [
        (SubmittedEventV1, V1_SUBMITTED),
        (SubmittedEventV1, V1_ANONYMOUS),
        (EngagementEventV1, V1_ENGAGEMENT),
        (EngagementEventV1, V1_COMMENT),
        (NotificationSentEventV1, V1_SENT),
        (RoutedEvent, V1_ROUTED),
        (StatusChangedEvent, V1_STATUS),
        (RerouteCommand, V1_REROUTE),
    ],
)
def test_old_events_as_first_written_still_parse(model, raw):
    event = model.parse(raw)
    assert event.subject == event.data.idea_id
    assert event.type == json.loads(raw)["type"]


def test_old_events_keep_their_personal_fields_for_the_migration():
    submitted = SubmittedEventV1.parse(V1_SUBMITTED).data
    assert (submitted.submitter.name, submitted.submitter.email) == ("Anna", "anna@kiruna.se")
    assert submitted.submitter.organisation == "kiruna-kommun" and submitted.channel == "web"
    assert SubmittedEventV1.parse(V1_ANONYMOUS).data.submitter is None
    comment = EngagementEventV1.parse(V1_COMMENT)
    assert (comment.data.person, comment.data.text, comment.correlationid) == ("per@kiruna.se", "Bra idé!", "c1")
    assert NotificationSentEventV1.parse(V1_SENT).data.recipient == "anna@kiruna.se"
    preferences = PreferencesChangedEventV1.parse(V1_PREFERENCES)
    assert preferences.subject == preferences.data.person == "anna@kiruna.se"  # v1 was keyed by the address
    assert preferences.data.frequency == "daily" and preferences.data.via == "unsubscribe"
    assert set(V1_TYPES.values()) == {
        "se.kiruna.innovation.idea.submitted.v1",
        "se.kiruna.innovation.idea.engagement.v1",
        "se.kiruna.innovation.notification.sent.v1",
        "se.kiruna.innovation.notification.preferences-changed.v1",
    }


def test_a_v1_event_is_not_a_v2_event_which_is_why_the_topics_changed():
    with pytest.raises(ValidationError, match=r"data\.submitter\.pseudonym"):
        SubmittedEvent.parse(V1_SUBMITTED)
    with pytest.raises(ValidationError, match=r"data\.person"):
        EngagementEvent.parse(V1_ENGAGEMENT)
    with pytest.raises(ValidationError, match=r"data\.contact"):
        PreferencesChangedEvent.parse(V1_PREFERENCES)


# --- the .v2 contracts ---------------------------------------------------------------------------------------


def test_a_submitted_idea_round_trips_with_its_submitter_sealed():
    key = key_of()
    submitter = {"name": NAME, "email": ANNA.lower()}
    idea = IdeaSubmitted(
        idea_id="i9",
        title="Laddstolpar",
        description="Vid stadshuset",
        submitter={
            "pseudonym": key.pseudonym,
            "sealed": key.seal_json(submitter),
            "organisation": "kiruna-kommun",
            "unit": "samhallsbyggnad",
        },
    )
    envelope = Envelope.wrap(idea, source="/tests", correlation_id="c1")
    raw = envelope.to_bytes()
    again = SubmittedEvent.parse(raw)
    assert again == envelope
    assert again.subject == "i9" and again.type == "se.kiruna.innovation.idea.submitted.v2"
    assert again.data.submitter.pseudonym == pseudonym(PEPPER, "anna.svensson@kiruna.se")  # address lower-cased
    assert open_json(key, again.data.submitter.sealed) == submitter
    assert b"svensson" not in raw.lower() and NAME.encode() not in raw  # nothing personal in the clear
    assert open_json(key_of("someone.else@kiruna.se"), again.data.submitter.sealed) is None  # only its own key


def test_an_anonymous_idea_has_no_person_at_all():
    raw = Envelope.wrap(IdeaSubmitted(idea_id="i8", title="Snö", description="", anonymous=True), source="/t")
    assert SubmittedEvent.parse(raw.to_bytes()).data.submitter is None
    assert "submitter" not in json.loads(raw.to_bytes())["data"]  # left out, not null


def test_engagement_round_trips_with_the_person_and_the_comment_sealed_under_one_key():
    key = key_of("per.niemi@kiruna.se")
    person = {
        "pseudonym": key.pseudonym,
        "sealed": key.seal_json({"name": "Per Niemi", "email": "per.niemi@kiruna.se"}),
    }
    comment = IdeaEngagement(idea_id="i1", kind="comment", person=person, text=key.seal("Bra idé, kör!"))
    support = IdeaEngagement(idea_id="i1", kind=EngagementKind.SUPPORT, person=person)
    for payload in (comment, support):
        envelope = Envelope.wrap(payload, source="/tests")
        again = EngagementEvent.parse(envelope.to_bytes())
        assert again == envelope and again.subject == "i1"
        assert again.type == "se.kiruna.innovation.idea.engagement.v2"
        assert b"niemi" not in envelope.to_bytes().lower()
    assert open_sealed(key, comment.text) == "Bra idé, kör!" and support.text is None
    assert comment.text.key == comment.person.sealed.key == key.key_id


def test_preferences_are_keyed_by_the_pseudonym_with_the_contact_sealed():
    key = key_of()
    preferences = PreferencesChanged(
        person=key.pseudonym,
        contact=key.seal_json({"email": ANNA.lower(), "name": NAME}),
        channels=("in-app",),
        frequency="daily",
        areas=("boende",),
    )
    envelope = Envelope.wrap(preferences, source="/services/notifications")
    again = PreferencesChangedEvent.parse(envelope.to_bytes())
    assert again == envelope and again.subject == key.pseudonym  # the Kafka key: never the address
    assert again.type == "se.kiruna.innovation.notification.preferences-changed.v2"
    assert open_json(key, again.data.contact) == {"email": ANNA.lower(), "name": NAME}
    assert b"svensson" not in envelope.to_bytes().lower()


def test_a_notification_names_its_recipient_by_pseudonym():
    key = key_of()
    sent = NotificationSent(
        idea_id="i1", cause_event_id="a1", recipient=key.pseudonym, channel="email", outcome="delivered"
    )
    envelope = Envelope.wrap(sent, source="/services/notifications", event_id=derived_event_id("a1", key.pseudonym))
    again = NotificationSentEvent.parse(envelope.to_bytes())
    assert again == envelope and again.subject == "i1" and again.data.recipient == key.pseudonym
    assert again.type == "se.kiruna.innovation.notification.sent.v2"


def test_the_people_s_events_are_keyed_by_the_pseudonym():
    key = key_of()
    record = KeyEncryptionKey(bytes(range(32))).wrap(key)
    keyed = Envelope.wrap(record, source="/shared/keyring", event_id=record.key_id, time=record.created)
    again = PersonKeyEvent.parse(keyed.to_bytes())
    assert again == keyed and again.subject == key.pseudonym and again.id == key.key_id
    assert again.type == "se.kiruna.innovation.person.key.v1"
    assert KeyEncryptionKey(bytes(range(32))).unwrap(again.data).secret == key.secret

    erasure = Envelope.wrap(
        PersonErasureRequested(pseudonym=key.pseudonym, requested_by="admin", admin="admin-1"),
        source="/services/intake",
    )
    again = ErasureRequestedEvent.parse(erasure.to_bytes())
    assert again == erasure and again.subject == key.pseudonym
    assert again.type == event_type(PersonErasureRequested) == "se.kiruna.innovation.person.erasure-requested.v1"
    with pytest.raises(ValidationError, match=r"data\.requested_by"):
        ErasureRequestedEvent.parse({**json.loads(erasure.to_bytes()), "data": {"pseudonym": "p", "requested_by": "x"}})


# --- what holds for every contract ---------------------------------------------------------------------------


def test_fields_added_by_a_newer_producer_are_ignored():
    raw = json.loads(V1_ROUTED)
    raw["traceparent"] = "00-abc-def-01"
    raw["data"]["priority"] = "high"
    raw["data"]["organisations"][0]["contact"] = {"key": "k", "box": "b"}
    event = RoutedEvent.parse(raw)
    assert event.data.reason.startswith("'fjärrvärme'")
    old = json.loads(V1_SUBMITTED)
    old["data"]["submitter"]["phone"] = "0980-70000"
    assert SubmittedEventV1.parse(old).data.submitter.name == "Anna"


def test_a_missing_required_field_is_named():
    raw = json.loads(V1_ROUTED)
    del raw["data"]["reason"]
    with pytest.raises(ValidationError, match=r"data\.reason"):
        RoutedEvent.parse(raw)
    key = key_of()
    sealed = {"pseudonym": key.pseudonym, "sealed": {"key": key.key_id}}  # a sealed value without its box
    raw = {**json.loads(V1_SUBMITTED), "type": "se.kiruna.innovation.idea.submitted.v2"}
    raw["data"] = {**raw["data"], "submitter": sealed}
    with pytest.raises(ValidationError, match=r"data\.submitter\.sealed\.box"):
        SubmittedEvent.parse(raw)


def test_events_are_immutable():
    idea = IdeaSubmitted(idea_id="i9", title="Laddstolpar", description="")
    with pytest.raises(ValidationError):
        idea.title = "changed"  # type: ignore[misc]


def test_derived_ids_are_deterministic_per_cause_and_handler():
    assert derived_event_id("e1", "routing.route") == derived_event_id("e1", "routing.route")
    assert derived_event_id("e1", "routing.route") != derived_event_id("e2", "routing.route")
    assert derived_event_id("e1", "routing.route") != derived_event_id("e1", "notifications")


# --- issue 18: challenges, edits, assignment, withdrawal, comments shown with their author ------------------------

# As the v2 producers wrote them before issue 18: no challenge_id, no anonymous/official on a comment.
V2_SUBMITTED_BEFORE_CHALLENGES = """{"specversion":"1.0","id":"b1","source":"/services/intake",
"type":"se.kiruna.innovation.idea.submitted.v2","time":"2026-11-30T09:00:00Z","subject":"i3","data":{"idea_id":"i3",
"title":"Snöröjning","description":"Tidigare","anonymous":true,"channel":"web"}}"""
V2_COMMENT_BEFORE_AUTHORSHIP = """{"specversion":"1.0","id":"b2","source":"/services/intake",
"type":"se.kiruna.innovation.idea.engagement.v2","time":"2026-11-30T10:00:00Z","subject":"i3","data":{"idea_id":"i3",
"kind":"comment","person":{"pseudonym":"ab","sealed":{"key":"ab.000000000000","box":"x"}},
"text":{"key":"ab.000000000000","box":"y"}}}"""


def test_events_written_before_issue_18_still_parse_with_the_new_fields_at_their_defaults():
    submitted = SubmittedEvent.parse(V2_SUBMITTED_BEFORE_CHALLENGES)
    assert submitted.data.challenge_id is None
    comment = EngagementEvent.parse(V2_COMMENT_BEFORE_AUTHORSHIP)
    assert (comment.data.anonymous, comment.data.official) == (False, None)


def test_a_withdrawal_is_a_status_change_to_a_final_state_officers_cannot_make():
    from shared.events import IdeaState, IdeaStatusChanged
    from shared.lifecycle import EDITABLE, TERMINAL, WITHDRAWABLE, allowed_transitions

    change = IdeaStatusChanged(idea_id="i1", to_state="withdrawn", changed_by="ab12", reason=None)
    assert StatusChangedEvent.parse(Envelope.wrap(change, source="/t").to_bytes()).data.to_state is IdeaState.WITHDRAWN
    assert IdeaState.WITHDRAWN in TERMINAL
    assert allowed_transitions(IdeaState.WITHDRAWN) == ()
    assert all(IdeaState.WITHDRAWN not in allowed_transitions(s) for s in IdeaState)  # the submitter's alone
    assert IdeaState.ACKNOWLEDGED in WITHDRAWABLE and IdeaState.ACKNOWLEDGED not in EDITABLE
    assert IdeaState.ACCEPTED not in WITHDRAWABLE


def test_the_new_events_round_trip_and_are_keyed_by_their_subject():
    from datetime import UTC, datetime

    from shared.events import (
        AssignedEvent,
        ChallengeAudience,
        ChallengeOpened,
        ChallengeOpenedEvent,
        EditedEvent,
        IdeaAssigned,
        IdeaEdited,
    )

    challenge = ChallengeOpened(
        challenge_id="c1",
        question="Hur minskar vi energianvändningen i våra lokaler?",
        organisation="tekniska-verken",
        audience=(ChallengeAudience(organisation="tekniska-verken", unit="energi"),),
        areas=("klimat-och-energi",),
        opens_at=datetime(2026, 12, 1, tzinfo=UTC),
        closes_at=datetime(2026, 12, 31, tzinfo=UTC),
        opened_by="erik.lindberg",
    )
    for model, payload, subject in [
        (ChallengeOpenedEvent, challenge, "c1"),
        (EditedEvent, IdeaEdited(idea_id="i1", title="Ny titel", description="Rättad", edited_by="ab"), "i1"),
        (
            AssignedEvent,
            IdeaAssigned(idea_id="i1", organisation="kirunabostader", assignee="maria", assigned_by="erik"),
            "i1",
        ),
    ]:
        envelope = Envelope.wrap(payload, source="/services/intake")
        parsed = model.parse(envelope.to_bytes())
        assert parsed.subject == subject
        assert parsed.data == payload
        assert parsed.type == event_type(type(payload))
