"""Who a pseudonym is, asked only when it must be: whether a person is still there (their key live, and made after
any erasure of theirs), and where their mail goes, opened from their sealed contact at the moment of sending.

- A value sealed under a key that is gone, or under a key made before the person's erasure (the erasure may reach
  notifications before the key's removal does), is **not live**: no person-state (contact, follower, preferences,
  submitter) is made from it, so a rebuild after an erasure leaves the person erased. A person who comes back has
  a fresh key, made after the erasure, and starts from nothing.
- An officer's address and name come from the catalogue (public configuration); anyone else's from their sealed
  contact (``contact:<pseudonym>``), opened with the keyring. None: the person was erased; the mail is skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from services.notifications.delivery.model import Address
from services.notifications.domain import Directory
from shared.catalogue import Catalogue
from shared.events import Sealed
from shared.sealing import DataKey


class Keys(Protocol):
    """The people's keyring as notifications uses it (``shared.keyring.Keyring``; ``FakeKeyring`` in unit tests)."""

    def pseudonym(self, person: str) -> str: ...

    async def key_for(self, person: str) -> DataKey: ...

    async def current(self, pseudonym_: str) -> DataKey | None: ...

    async def key(self, key_id: str) -> DataKey | None: ...

    async def open(self, sealed: Sealed | None) -> str | None: ...

    async def open_json(self, sealed: Sealed | None) -> dict[str, Any] | None: ...

    def forget_cached(self, pseudonym_: str) -> None: ...


class PeopleState(Protocol):
    """What of the store (``NotificationStore``) this needs: sealed contacts and erasure marks."""

    async def contact(self, person: str) -> Sealed | None: ...

    async def erased_at(self, people: list[str]) -> dict[str, float]: ...


class Contacts:
    def __init__(self, store: PeopleState, keyring: Keys, catalogue: Callable[[], Catalogue]) -> None:
        self.store = store
        self.keyring = keyring
        self.catalogue = catalogue
        self._directory: Directory | None = None

    def directory(self) -> Directory:
        """The current catalogue's officers by pseudonym (made again when the catalogue changes)."""
        catalogue = self.catalogue()
        if self._directory is None or self._directory.catalogue is not catalogue:
            self._directory = Directory.of(catalogue, self.keyring.pseudonym)
        return self._directory

    def pseudonym(self, email: str) -> str:
        return self.keyring.pseudonym(email)

    # --- is the person there ---------------------------------------------------------------------------

    async def live_key(self, sealed: Sealed | None) -> DataKey | None:
        """The key of a sealed value if person-state may be made from it: the key exists and was made after the
        person's last erasure. None otherwise (the person was erased)."""
        if sealed is None:
            return None
        key = await self.keyring.key(sealed.key)
        if key is None:
            return None
        erased = (await self.store.erased_at([key.pseudonym])).get(key.pseudonym)
        return key if erased is None or key.created.timestamp() > erased else None

    async def erased(self, people: list[str]) -> set[str]:
        """Those of ``people`` who were erased and have not come back (no key made since)."""
        gone = set()
        for person, at in (await self.store.erased_at(list(dict.fromkeys(people)))).items():
            key = await self.keyring.current(person)
            if key is None or key.created.timestamp() <= at:
                gone.add(person)
        return gone

    async def open(self, sealed: Sealed | None) -> str | None:
        """A sealed value's text (a comment), or None when it is gone."""
        return await self.keyring.open(sealed) if await self.live_key(sealed) else None

    # --- reaching the person -----------------------------------------------------------------------------

    async def address(self, person: str) -> Address | None:
        """Where ``person``'s mail goes, opened now; None when they were erased (or nobody knows how to reach them)."""
        if await self.erased([person]):
            return None
        officer = self.directory().officer(person)
        if officer is not None:
            return Address(officer.email, officer.name)
        sealed = await self.store.contact(person)
        if await self.live_key(sealed) is None:
            return None
        opened = await self.keyring.open_json(sealed)
        if not opened or not isinstance(opened.get("email"), str):
            return None
        name = opened.get("name")
        return Address(opened["email"], name if isinstance(name, str) else None)

    async def sealed_contact(self, person: str) -> Sealed | None:
        """A live sealed contact of ``person`` for an event about them (their preferences changed by the unsubscribe
        link): an officer's sealed anew from the catalogue, else their stored contact. None: the person was erased
        (or is unknown)."""
        if await self.erased([person]):
            return None
        officer = self.directory().officer(person)
        if officer is not None:
            key = await self.keyring.key_for(officer.email)
            return key.seal_json({"email": officer.email.strip().lower(), "name": officer.name})
        sealed = await self.store.contact(person)
        key = await self.live_key(sealed)
        return sealed if key is not None and key.pseudonym == person else None
