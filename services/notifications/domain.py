"""Who hears what, in which words. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from shared.catalogue import Catalogue
from shared.events import IdeaRouted, Submitter, derived_event_id


@dataclass(frozen=True)
class Contact:
    """How to reach a person about one idea."""

    person: str
    language: str = "sv"

    @classmethod
    def of_submitter(cls, submitter: Submitter | None, language: str) -> Contact | None:
        """The submitter's contact; None for anonymous ideas and submitters who left no address."""
        if submitter is None or not submitter.email:
            return None
        return cls(person=submitter.email.lower(), language=language)


@dataclass(frozen=True)
class FeedItem:
    notification_id: str
    cause_event_id: str
    idea_id: str
    recipient: str
    kind: str
    text: str
    link: str


def routed_to_submitter(
    routed: IdeaRouted, cause_event_id: str, contact: Contact, catalogue: Catalogue, base_url: str
) -> FeedItem:
    """The submitter's news that their idea reached the organisations that can act on it."""
    names = []
    for target in routed.organisations:
        org = catalogue.organisation(target.organisation)
        name = (
            (org.name_en or org.name)
            if org and contact.language == "en"
            else (org.name if org else target.organisation)
        )
        names.append(name)
    where = _join(names, contact.language)
    if contact.language == "en":
        text = f'Your idea "{routed.title}" has been sent to {where}.'
    else:
        text = f"Din idé ”{routed.title}” har skickats till {where}."
    return FeedItem(
        notification_id=derived_event_id(cause_event_id, f"notifications.routed:{contact.person}:in-app"),
        cause_event_id=cause_event_id,
        idea_id=routed.idea_id,
        recipient=contact.person,
        kind="routed",
        text=text,
        link=f"{base_url}/ideas/{routed.idea_id}",
    )


def _join(names: list[str], language: str) -> str:
    if len(names) <= 1:
        return "".join(names)
    conjunction = " and " if language == "en" else " och "
    return ", ".join(names[:-1]) + conjunction + names[-1]
