"""What analytics asks of the people's keyring (``shared/keyring.py``; ``FakeKeyring`` in the unit tests): which
sealed values can still be read, and their text. The keyring never remembers an absence, so a key made meanwhile
(a person's first act, or their return after an erasure) is seen at once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from services.analytics.domain import sealed_keys
from shared.events import Sealed
from shared.sealing import DataKey, open_json, open_sealed


class Keys(Protocol):
    def pseudonym(self, person: str) -> str: ...

    async def key(self, key_id: str) -> DataKey | None: ...

    async def current(self, pseudonym: str) -> DataKey | None: ...

    def forget_cached(self, pseudonym: str) -> None: ...


async def live_keys(keyring: Keys, events: Iterable[dict[str, Any]]) -> set[str]:
    """The data keys named by these events (as JSON) that exist now: values under any other key read as erased."""
    named = set().union(*(sealed_keys(event) for event in events))
    return {key_id for key_id in named if await keyring.key(key_id) is not None}


async def open_text(keyring: Keys, sealed: dict[str, Any]) -> str | None:
    """A sealed value's text (a ``Sealed`` as JSON), or None when its key is gone."""
    value = Sealed.model_validate(sealed)
    return open_sealed(await keyring.key(value.key), value)


async def open_person(keyring: Keys, sealed: dict[str, Any]) -> dict[str, Any] | None:
    """A sealed ``{"name", "email"}``, or None when its key is gone."""
    value = Sealed.model_validate(sealed)
    return open_json(await keyring.key(value.key), value)
