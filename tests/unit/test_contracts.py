"""Contracts: events written by older producers still parse; unknown fields are tolerated; ids derive."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from shared.events import (
    EngagementEvent,
    Envelope,
    IdeaSubmitted,
    NotificationSentEvent,
    RerouteCommand,
    RoutedEvent,
    StatusChangedEvent,
    SubmittedEvent,
    derived_event_id,
)

# Exactly as the first v1 producers wrote them: these must keep parsing for as long as the .v1 topics exist.
V1_SUBMITTED = """{"specversion":"1.0","id":"0b5d7c1e-9f0b-4f43-9a56-1d1f3d0c2a11","source":"/services/intake",
"type":"se.kiruna.innovation.idea.submitted.v1","time":"2026-11-27T09:00:00Z",
"subject":"5f0e0c7a-1111-4c3e-8d2b-0a9b8c7d6e5f","datacontenttype":"application/json",
"data":{"idea_id":"5f0e0c7a-1111-4c3e-8d2b-0a9b8c7d6e5f","title":"Fjärrvärme till badhuset",
"description":"Anslut badhuset.","language":"sv","area_hints":[],"organisation_hints":["tekniska-verken"],
"anonymous":false,"submitter":{"name":"Anna","email":"anna@kiruna.se","organisation":"kiruna-kommun"},
"channel":"web"}}"""
V1_ROUTED = """{"specversion":"1.0","id":"a1","source":"/services/routing","type":"se.kiruna.innovation.idea.routed.v1",
"time":"2026-11-27T09:00:01Z","subject":"i1","data":{"idea_id":"i1","organisations":[{"organisation":
"tekniska-verken","unit":"energi","score":3.0}],"areas":[{"area":"klimat-och-energi","score":3.0}],
"reason":"'fjärrvärme' -> klimat-och-energi -> tekniska-verken/energi"}}"""
V1_STATUS = """{"specversion":"1.0","id":"s1","source":"/services/intake","type":"se.kiruna.innovation.idea.status-changed.v1",
"time":"2026-11-28T10:00:00+01:00","subject":"i1","data":{"idea_id":"i1","to_state":"declined",
"reason":"Finns redan","changed_by":"erik.lindberg"}}"""
V1_ENGAGEMENT = """{"specversion":"1.0","id":"e1","source":"/services/intake","type":"se.kiruna.innovation.idea.engagement.v1",
"time":"2026-11-28T10:00:00Z","subject":"i1","data":{"idea_id":"i1","kind":"support","person":"per@kiruna.se"}}"""
V1_SENT = """{"specversion":"1.0","id":"n1","source":"/services/notifications",
"type":"se.kiruna.innovation.notification.sent.v1","time":"2026-11-28T10:00:00Z","subject":"i1",
"data":{"idea_id":"i1","cause_event_id":"a1","recipient":"anna@kiruna.se","channel":"in-app","outcome":"delivered"}}"""
V1_REROUTE = """{"specversion":"1.0","id":"r1","source":"/services/intake","type":"se.kiruna.innovation.command.reroute-idea.v1",
"time":"2026-11-28T10:00:00Z","subject":"i1","data":{"idea_id":"i1","organisations":[{"organisation":"kirunabostader"}],
"requested_by":"innovation.office","reason":"Gäller hyresgäster"}}"""


@pytest.mark.parametrize(
    ("model", "raw"),
    [
        (SubmittedEvent, V1_SUBMITTED),
        (RoutedEvent, V1_ROUTED),
        (StatusChangedEvent, V1_STATUS),
        (EngagementEvent, V1_ENGAGEMENT),
        (NotificationSentEvent, V1_SENT),
        (RerouteCommand, V1_REROUTE),
    ],
)
def test_v1_events_as_first_written_still_parse(model, raw):
    event = model.parse(raw)
    assert event.subject == event.data.idea_id


def test_fields_added_by_a_newer_producer_are_ignored():
    raw = json.loads(V1_SUBMITTED)
    raw["traceparent"] = "00-abc-def-01"
    raw["data"]["priority"] = "high"
    event = SubmittedEvent.parse(raw)
    assert event.data.title == "Fjärrvärme till badhuset"


def test_a_missing_required_field_is_named():
    raw = json.loads(V1_SUBMITTED)
    del raw["data"]["title"]
    with pytest.raises(ValidationError, match=r"data\.title"):
        SubmittedEvent.parse(raw)


def test_wrap_round_trips_through_bytes_with_the_idea_as_subject():
    idea = IdeaSubmitted(idea_id="i9", title="Laddstolpar", description="Vid stadshuset")
    envelope = Envelope.wrap(idea, source="/tests", correlation_id="c1")
    again = SubmittedEvent.parse(envelope.to_bytes())
    assert again == envelope
    assert again.subject == "i9" and again.type == "se.kiruna.innovation.idea.submitted.v1"


def test_events_are_immutable():
    idea = IdeaSubmitted(idea_id="i9", title="Laddstolpar", description="")
    with pytest.raises(ValidationError):
        idea.title = "changed"  # type: ignore[misc]


def test_derived_ids_are_deterministic_per_cause_and_handler():
    assert derived_event_id("e1", "routing.route") == derived_event_id("e1", "routing.route")
    assert derived_event_id("e1", "routing.route") != derived_event_id("e2", "routing.route")
    assert derived_event_id("e1", "routing.route") != derived_event_id("e1", "notifications")
