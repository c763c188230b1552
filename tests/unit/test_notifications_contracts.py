"""Contracts added for notifications: old events still parse, and a preference event is about a person."""

from __future__ import annotations

import json

from shared.events import (
    PAYLOAD_BY_TYPE,
    EngagementEvent,
    Envelope,
    NotificationSentEvent,
    PreferencesChanged,
    PreferencesChangedEvent,
    RoutedEvent,
    StatusChangedEvent,
    SubmittedEvent,
)
from shared.settings import KafkaSettings
from shared.topics import Topics

V1 = {
    SubmittedEvent: """{"specversion":"1.0","id":"0b5d","source":"/services/intake",
"type":"se.kiruna.innovation.idea.submitted.v1","time":"2026-11-27T09:00:00Z","subject":"i1",
"datacontenttype":"application/json","data":{"idea_id":"i1","title":"Fjärrvärme till badhuset",
"description":"Anslut badhuset.","language":"sv","anonymous":false,
"submitter":{"name":"Anna","email":"anna@kiruna.se"}}}""",
    RoutedEvent: """{"specversion":"1.0","id":"a1","source":"/services/routing",
"type":"se.kiruna.innovation.idea.routed.v1","time":"2026-11-27T09:00:01Z","subject":"i1","data":{"idea_id":"i1",
"organisations":[{"organisation":"tekniska-verken","unit":"energi","score":3.0}],"reason":"r"}}""",
    StatusChangedEvent: """{"specversion":"1.0","id":"s1","source":"/services/intake",
"type":"se.kiruna.innovation.idea.status-changed.v1","time":"2026-11-28T10:00:00+01:00","subject":"i1",
"data":{"idea_id":"i1","to_state":"declined","reason":"Finns redan","changed_by":"erik.lindberg"}}""",
    EngagementEvent: """{"specversion":"1.0","id":"e1","source":"/services/intake",
"type":"se.kiruna.innovation.idea.engagement.v1","time":"2026-11-28T10:00:00Z","subject":"i1",
"data":{"idea_id":"i1","kind":"comment","person":"per@kiruna.se","text":"Bra!"}}""",
    NotificationSentEvent: """{"specversion":"1.0","id":"n1","source":"/services/notifications",
"type":"se.kiruna.innovation.notification.sent.v1","time":"2026-11-28T10:00:00Z","subject":"i1",
"data":{"idea_id":"i1","cause_event_id":"a1","recipient":"anna@kiruna.se","channel":"in-app","outcome":"delivered"}}""",
}


def test_events_written_before_the_notifications_contracts_still_parse():
    for model, raw in V1.items():
        event = model.parse(raw)
        assert event.subject == "i1" and event.data.idea_id == "i1"
        again = model.parse(event.to_bytes())
        assert again == event


def test_idea_events_still_take_their_subject_from_the_idea_id():
    event = RoutedEvent.parse(V1[RoutedEvent])
    assert Envelope.wrap(event.data, source="/tests").subject == "i1"


def test_a_preferences_event_is_about_a_person_and_round_trips():
    changed = PreferencesChanged(person="anna@kiruna.se", areas=("boende",), frequency="daily", language="en")
    envelope = Envelope.wrap(changed, source="/services/notifications")
    assert envelope.subject == "anna@kiruna.se"
    assert envelope.type == "se.kiruna.innovation.notification.preferences-changed.v1"
    assert PAYLOAD_BY_TYPE[envelope.type] is PreferencesChanged
    parsed = PreferencesChangedEvent.parse(envelope.to_bytes())
    assert parsed.data == changed and parsed.data.channels == ("email", "in-app")


def test_a_preferences_event_from_a_newer_producer_with_unknown_fields_parses():
    raw = json.dumps(
        {
            "specversion": "1.0",
            "id": "p1",
            "source": "/x",
            "type": "se.kiruna.innovation.notification.preferences-changed.v1",
            "time": "2026-11-28T10:00:00Z",
            "subject": "kim@kiruna.se",
            "data": {"person": "kim@kiruna.se", "quiet_hours": "22-07"},
        }
    )
    assert PreferencesChangedEvent.parse(raw).data.frequency == "immediate"


def test_the_preferences_topic_is_kept_forever_and_has_a_dead_letter_topic():
    specs = {s.name: s for s in Topics("p.").specs(KafkaSettings(), ("kirunabostader",))}
    assert specs["p.notifications.preferences.v1"].config["retention.ms"] == "-1"
    assert "p.notifications.preferences.v1.dlq" in specs and "p.notifications.dlq" in specs
