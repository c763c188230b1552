"""Crypto-shredding, the pure part: a person's pseudonym, their data key, sealing a personal value under it and
wrapping the key under the key-encryption key. No I/O (the keyring, ``shared/keyring.py``, keeps the keys).

- A **pseudonym** stands for a person wherever the platform must know "the same person" without naming them:
  ``HMAC-SHA256(pepper, lower-cased e-mail address)``, 32 hex digits. Without the pepper (a secret setting) a list
  of firstname.lastname addresses does not reverse it, as a bare hash would.
- A **data key** (AES-256) is a person's; its id is ``<pseudonym>.<12 hex digits>`` so the key of a sealed value is
  found from the value alone. A person who was erased and comes back gets a new key, and a new id.
- A **sealed** value is ``AES-256-GCM(data key, nonce, value, associated data = key id)``, written into an event as
  :class:`shared.events.Sealed`. When the key is gone (erased), the value is gone: :func:`open_sealed` answers None.
- The data key is stored only **wrapped**: ``AES-256-GCM(key-encryption key, nonce, data key, key id)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.events import PersonKey, Sealed, utc_now

NONCE_BYTES = 12
KEY_BYTES = 32
_KEY_ID = re.compile(r"^([0-9a-f]{32})\.[0-9a-f]{12}$")
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")

ERASED = "erased"
"""What a personal value reads as once its person's key is gone."""


class WrongKeyEncryptionKey(ValueError):
    """The key-encryption key cannot unwrap a stored data key: the setting is not the one the keys were made with."""


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode_secret_key(value: str, setting: str) -> bytes:
    """A 32-byte key from its base64 (standard or url-safe) form; a readable error naming ``setting`` otherwise."""
    try:
        raw = base64.b64decode(value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{setting} is not base64 (make one with: openssl rand -base64 32)") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"{setting} must be {KEY_BYTES} bytes in base64 (got {len(raw)}; openssl rand -base64 32)")
    return raw


def normalise_person(person: str) -> str:
    """The person id a pseudonym is made from: the e-mail address, trimmed and lower-cased."""
    return person.strip().lower()


def pseudonym(pepper: bytes, person: str) -> str:
    """The stable pseudonym of a person (their e-mail address): HMAC-SHA256 with the secret pepper, 32 hex."""
    return hmac.new(pepper, normalise_person(person).encode(), hashlib.sha256).hexdigest()[:32]


def is_pseudonym(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


def pseudonym_of_key(key_id: str) -> str | None:
    """The pseudonym a key id belongs to (its first part), or None for something that is not a key id."""
    match = _KEY_ID.match(key_id)
    return match.group(1) if match else None


@dataclass(frozen=True)
class DataKey:
    """One person's data key, unwrapped (kept in memory only)."""

    key_id: str
    pseudonym: str
    secret: bytes
    created: datetime

    @classmethod
    def new(cls, pseudonym_: str, *, now: datetime | None = None) -> DataKey:
        return cls(
            key_id=f"{pseudonym_}.{secrets.token_hex(6)}",
            pseudonym=pseudonym_,
            secret=AESGCM.generate_key(bit_length=256),
            created=now or utc_now(),
        )

    def seal(self, value: str) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        box = AESGCM(self.secret).encrypt(nonce, value.encode(), self.key_id.encode())
        return Sealed(key=self.key_id, box=b64encode(nonce + box))

    def seal_json(self, value: dict[str, Any]) -> Sealed:
        return self.seal(json.dumps(value, ensure_ascii=False, separators=(",", ":")))

    def open(self, sealed: Sealed) -> str | None:
        """The value, or None when it was sealed under another key (or tampered with)."""
        if sealed.key != self.key_id:
            return None
        try:
            raw = b64decode(sealed.box)
            return AESGCM(self.secret).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], self.key_id.encode()).decode()
        except (InvalidTag, ValueError, binascii.Error):
            return None


def open_sealed(key: DataKey | None, sealed: Sealed | None) -> str | None:
    """A sealed value's text; None when there is none, or its person's key is gone (erased)."""
    if sealed is None or key is None:
        return None
    return key.open(sealed)


def open_json(key: DataKey | None, sealed: Sealed | None) -> dict[str, Any] | None:
    text = open_sealed(key, sealed)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class KeyEncryptionKey:
    """Wraps and unwraps data keys. Its id (an HMAC of a fixed label) is recorded with every wrapped key, so a
    service started with another key-encryption key says so instead of reading nothing."""

    def __init__(self, secret: bytes, setting: str = "PEOPLE_KEK") -> None:
        if len(secret) != KEY_BYTES:
            raise ValueError(f"{setting} must be {KEY_BYTES} bytes")
        self._secret = secret
        self.setting = setting
        self.kek_id = hmac.new(secret, b"kiruna-kek-id", hashlib.sha256).hexdigest()[:16]

    def wrap(self, key: DataKey) -> PersonKey:
        nonce = os.urandom(NONCE_BYTES)
        wrapped = AESGCM(self._secret).encrypt(nonce, key.secret, key.key_id.encode())
        return PersonKey(
            pseudonym=key.pseudonym,
            key_id=key.key_id,
            wrapped=b64encode(nonce + wrapped),
            kek_id=self.kek_id,
            created=key.created,
        )

    def unwrap(self, record: PersonKey) -> DataKey:
        if record.kek_id != self.kek_id:
            raise WrongKeyEncryptionKey(
                f"{self.setting} is not the key-encryption key the data keys were wrapped with (their kek id is "
                f"{record.kek_id}, {self.setting} gives {self.kek_id}): set {self.setting} to the group's value"
            )
        raw = b64decode(record.wrapped)
        try:
            secret = AESGCM(self._secret).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], record.key_id.encode())
        except InvalidTag:
            raise WrongKeyEncryptionKey(f"{self.setting} cannot unwrap the data key {record.key_id}") from None
        return DataKey(key_id=record.key_id, pseudonym=record.pseudonym, secret=secret, created=record.created)


def mask_email(text: str) -> str:
    """Every e-mail address in ``text`` masked to its first letter and domain (``a***@kiruna.se``): what logs,
    dead-letter headers and trace attributes may carry."""
    return _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
