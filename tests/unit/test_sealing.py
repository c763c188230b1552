"""Crypto-shredding's pure part (shared/sealing.py) and the settings that hold its secrets."""

from __future__ import annotations

import base64

import pytest

from shared.events import Sealed
from shared.sealing import (
    DataKey,
    KeyEncryptionKey,
    WrongKeyEncryptionKey,
    decode_secret_key,
    mask_email,
    open_json,
    open_sealed,
    pseudonym,
    pseudonym_of_key,
)
from shared.settings import DevelopmentSecret, ServiceSettings, refuse_development_secrets

PEPPER = b"a pepper of the tests, 32 bytes."


def test_a_pseudonym_is_stable_case_blind_and_depends_on_the_pepper():
    anna = pseudonym(PEPPER, "Anna.Svensson@Kiruna.se ")
    assert anna == pseudonym(PEPPER, "anna.svensson@kiruna.se")
    assert len(anna) == 32 and int(anna, 16) >= 0
    assert anna != pseudonym(b"another pepper, another platform", "anna.svensson@kiruna.se")
    assert anna != pseudonym(PEPPER, "per.niemi@kiruna.se")
    import hashlib

    assert anna not in hashlib.sha256(b"anna.svensson@kiruna.se").hexdigest()  # never a bare hash


def test_a_sealed_value_opens_with_its_key_only():
    anna = DataKey.new(pseudonym(PEPPER, "anna@kiruna.se"))
    per = DataKey.new(pseudonym(PEPPER, "per@kiruna.se"))
    sealed = anna.seal_json({"name": "Anna Svensson", "email": "anna@kiruna.se"})
    assert "Anna" not in sealed.box and "anna" not in sealed.box
    assert sealed.key == anna.key_id and pseudonym_of_key(sealed.key) == anna.pseudonym
    assert open_json(anna, sealed) == {"name": "Anna Svensson", "email": "anna@kiruna.se"}
    assert open_sealed(per, sealed) is None  # another person's key
    assert open_sealed(None, sealed) is None  # the key is gone: erased
    forged = Sealed(key=per.key_id, box=sealed.box)
    assert open_sealed(per, forged) is None  # a value moved under another key id does not open
    tampered = Sealed(key=sealed.key, box=sealed.box[:-2] + ("A" if sealed.box[-2] != "A" else "B") + sealed.box[-1])
    assert open_sealed(anna, tampered) is None


def test_two_seals_of_the_same_value_differ():
    key = DataKey.new(pseudonym(PEPPER, "anna@kiruna.se"))
    assert key.seal("hej").box != key.seal("hej").box


def test_a_person_who_comes_back_gets_another_key_id():
    name = pseudonym(PEPPER, "anna@kiruna.se")
    assert DataKey.new(name).key_id != DataKey.new(name).key_id


def test_data_keys_are_wrapped_and_a_wrong_key_encryption_key_is_named():
    kek = KeyEncryptionKey(b"k" * 32)
    key = DataKey.new(pseudonym(PEPPER, "anna@kiruna.se"))
    record = kek.wrap(key)
    assert base64.urlsafe_b64encode(key.secret).decode().rstrip("=") not in record.wrapped
    assert kek.unwrap(record) == key
    with pytest.raises(WrongKeyEncryptionKey, match="PEOPLE_KEK"):
        KeyEncryptionKey(b"x" * 32).unwrap(record)


@pytest.mark.parametrize(
    ("value", "problem"),
    [("", "must be 32 bytes"), ("not base64 at all!", "not base64"), (base64.b64encode(b"short").decode(), "got 5")],
)
def test_a_malformed_key_encryption_key_names_the_setting(value, problem):
    with pytest.raises(ValueError, match=f"PEOPLE_KEK.*{problem}|{problem}.*PEOPLE_KEK|PEOPLE_KEK"):
        decode_secret_key(value, "PEOPLE_KEK")
    with pytest.raises(ValueError, match="PEOPLE_KEK"):
        ServiceSettings(PEOPLE_KEK=value)


def test_production_refuses_the_development_key_encryption_key_and_pepper():
    settings = ServiceSettings(KIRUNA_ENV="production", SESSION_SECRET="s" * 40, OIDC_CLIENT_SECRET="c" * 40)
    with pytest.raises(DevelopmentSecret) as refused:
        refuse_development_secrets(settings)
    assert "PEOPLE_KEK is the built-in development value" in str(refused.value)
    assert "PSEUDONYM_PEPPER is the built-in development value" in str(refused.value)


def test_addresses_are_masked_in_text():
    text = "550 5.1.1 <anna.svensson@kiruna.se>: unknown; cc Per.Niemi@TVAB.se"
    masked = mask_email(text)
    assert "anna.svensson" not in masked and "Per.Niemi" not in masked
    assert "a***@kiruna.se" in masked and "P***@TVAB.se" in masked
