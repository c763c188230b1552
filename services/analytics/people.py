"""What analytics asks of the people's keyring (``shared/keyring.py``; ``FakeKeyring`` in the unit tests): which
sealed values can still be read, and their text.

The keyring remembers a key, or its absence, for up to 30 s in each process. An absence remembered from before a
key was made (a person who had never acted, or who came back after an erasure) would make the new key's values
read as erased, and the event be projected without its person for good. So an answer "no such key" is checked
once more against Redis before it is believed; an erased person's values cost that one extra read."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from services.analytics.domain import key_owner, sealed_keys
from shared.events import Sealed
from shared.sealing import DataKey, open_json, open_sealed


class Keys(Protocol):
    def pseudonym(self, person: str) -> str: ...

    async def key(self, key_id: str) -> DataKey | None: ...

    async def current(self, pseudonym: str) -> DataKey | None: ...

    def forget_cached(self, pseudonym: str) -> None: ...


async def key_of(keyring: Keys, key_id: str) -> DataKey | None:
    """The data key ``key_id`` names, or None when it is gone (the person was erased)."""
    key = await keyring.key(key_id)
    if key is None:
        keyring.forget_cached(key_owner(key_id))
        key = await keyring.key(key_id)
    return key


async def current_key(keyring: Keys, pseudonym: str) -> DataKey | None:
    """The person's current data key, or None when they have none (never acted, or erased)."""
    key = await keyring.current(pseudonym)
    if key is None:
        keyring.forget_cached(pseudonym)
        key = await keyring.current(pseudonym)
    return key


async def live_keys(keyring: Keys, events: Iterable[dict[str, Any]]) -> set[str]:
    """The data keys named by these events (as JSON) that exist now: values under any other key read as erased."""
    named = set().union(*(sealed_keys(event) for event in events))
    return {key_id for key_id in named if await key_of(keyring, key_id) is not None}


async def open_text(keyring: Keys, sealed: dict[str, Any]) -> str | None:
    """A sealed value's text (a ``Sealed`` as JSON), or None when its key is gone."""
    value = Sealed.model_validate(sealed)
    return open_sealed(await key_of(keyring, value.key), value)


async def open_person(keyring: Keys, sealed: dict[str, Any]) -> dict[str, Any] | None:
    """A sealed ``{"name", "email"}``, or None when its key is gone."""
    value = Sealed.model_validate(sealed)
    return open_json(await key_of(keyring, value.key), value)
