"""The contracts notifications reads and writes: idea events it consumes parse (and round-trip); a preferences event
is about a pseudonym with the address and name sealed; an outcome names a pseudonym; their topics are .v2."""

from __future__ import annotations

import json

from shared.events import (
    PAYLOAD_BY_TYPE,
    Envelope,
    NotificationSent,
    NotificationSentEvent,
    PreferencesChanged,
    PreferencesChangedEvent,
    RoutedEvent,
    StatusChangedEvent,
)
from shared.sealing import DataKey, open_json, pseudonym
from shared.settings import KafkaSettings
from shared.topics import Topics

ANNA = "anna@kiruna.se"
PEPPER = b"test-pseudonym-pepper"

V1 = {
    RoutedEvent: """{"specversion":"1.0","id":"a1","source":"/services/routing",
"type":"se.kiruna.innovation.idea.routed.v1","time":"2026-11-27T09:00:01Z","subject":"i1","data":{"idea_id":"i1",
"organisations":[{"organisation":"tekniska-verken","unit":"energi","score":3.0}],"reason":"r"}}""",
    StatusChangedEvent: """{"specversion":"1.0","id":"s1","source":"/services/intake",
"type":"se.kiruna.innovation.idea.status-changed.v1","time":"2026-11-28T10:00:00+01:00","subject":"i1",
"data":{"idea_id":"i1","to_state":"declined","reason":"Finns redan","changed_by":"erik.lindberg"}}""",
}


def test_the_idea_events_still_on_v1_parse_and_round_trip():
    for model, raw in V1.items():
        event = model.parse(raw)
        assert event.subject == "i1" and event.data.idea_id == "i1"
        assert model.parse(event.to_bytes()) == event


def test_a_preferences_event_is_about_a_pseudonym_and_its_contact_is_sealed():
    key = DataKey.new(pseudonym(PEPPER, ANNA))
    contact = key.seal_json({"email": ANNA, "name": "Anna Svensson"})
    changed = PreferencesChanged(person=key.pseudonym, contact=contact, areas=("boende",), frequency="daily")
    envelope = Envelope.wrap(changed, source="/services/notifications")
    assert envelope.subject == key.pseudonym and envelope.type.endswith("preferences-changed.v2")
    assert PAYLOAD_BY_TYPE[envelope.type] is PreferencesChanged
    raw = envelope.to_bytes()
    assert ANNA.encode() not in raw and b"Anna" not in raw
    parsed = PreferencesChangedEvent.parse(raw)
    assert parsed.data == changed and parsed.data.channels == ("email", "in-app")
    assert open_json(key, parsed.data.contact) == {"email": ANNA, "name": "Anna Svensson"}
    assert open_json(None, parsed.data.contact) is None  # the key gone: the contact is gone


def test_a_preferences_event_from_a_newer_producer_with_unknown_fields_parses():
    key = DataKey.new(pseudonym(PEPPER, "kim@kiruna.se"))
    raw = json.dumps(
        {
            "specversion": "1.0",
            "id": "p1",
            "source": "/x",
            "type": "se.kiruna.innovation.notification.preferences-changed.v2",
            "time": "2026-11-28T10:00:00Z",
            "subject": key.pseudonym,
            "data": {
                "person": key.pseudonym,
                "contact": key.seal_json({"email": "kim@kiruna.se", "name": "Kim"}).model_dump(),
                "quiet_hours": "22-07",
            },
        }
    )
    assert PreferencesChangedEvent.parse(raw).data.frequency == "immediate"


def test_an_outcome_names_the_pseudonym_of_its_recipient():
    sent = NotificationSent(
        idea_id="i1", cause_event_id="a1", recipient=pseudonym(PEPPER, ANNA), channel="email", outcome="delivered"
    )
    envelope = Envelope.wrap(sent, source="/services/notifications", event_id="n1")
    assert envelope.type.endswith("notification.sent.v2") and ANNA.encode() not in envelope.to_bytes()
    assert NotificationSentEvent.parse(envelope.to_bytes()).data == sent


def test_the_preferences_topic_is_compacted_v2_and_has_a_dead_letter_topic():
    topics = Topics("p.")
    specs = {s.name: s for s in topics.specs(KafkaSettings(), ("kirunabostader",))}
    assert topics.preferences == "p.notifications.preferences.v2" and topics.notifications_sent.endswith(".v2")
    assert specs["p.notifications.preferences.v2"].config["cleanup.policy"] == "compact"
    assert "p.notifications.preferences.v2.dlq" in specs and "p.notifications.dlq" in specs
    assert "p.people.erasures.v1.dlq" in specs  # notifications consumes the erasures too
