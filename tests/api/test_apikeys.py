"""speakerline.apikeys: the key format, hashing, and verification against the stored (hashed) record."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

import pytest

from speakerline import apikeys
from tests.fakes import MemoryFirestore


def test_new_key_has_the_documented_format_and_parses_back() -> None:
    key, key_id, digest = apikeys.new_key()

    assert re.fullmatch(r"slk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", key)
    assert apikeys.parse(key) == (key_id, key.split("_", 2)[2])
    assert digest == hashlib.sha256(key.split("_", 2)[2].encode()).hexdigest()


def test_new_keys_differ() -> None:
    keys = {apikeys.new_key()[0] for _ in range(20)}
    assert len(keys) == 20


def test_secret_may_contain_underscores_and_dashes() -> None:
    secret = "a_b-" * 10 + "xyz"
    assert apikeys.parse(f"slk_0123456789ab_{secret}") == ("0123456789ab", secret)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "slk_",
        "slk_0123456789ab",
        "slk_0123456789ab_" + "A" * 42,  # secret too short
        "slk_0123456789ab_" + "A" * 44,  # secret too long
        "slk_0123456789AB_" + "A" * 43,  # key_id must be lowercase hex
        "slk_0123456789a_" + "A" * 43,  # key_id too short
        "slk_0123456789abc_" + "A" * 43,  # key_id too long
        "sk_0123456789ab_" + "A" * 43,  # wrong prefix
        "slk_0123456789ab_" + "A" * 42 + "=",  # not URL-safe base64
        " slk_0123456789ab_" + "A" * 43,
        "eyJhbGciOi.eyJpc3Mi.c2lnbmF0dXJl",  # a JWT
    ],
)
def test_parse_refuses_malformed_keys(token: str) -> None:
    assert apikeys.parse(token) is None


def test_parse_refuses_a_trailing_newline() -> None:
    assert apikeys.parse("slk_0123456789ab_" + "A" * 43 + "\n") is None


def test_hash_secret_is_the_sha256_hex_of_the_secret() -> None:
    assert apikeys.hash_secret("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert apikeys.hash_secret("abc") != apikeys.hash_secret("abd")


@pytest.mark.parametrize("producer", ["newsroom", "a", "news.room_2-b", "0day", "x" * 63])
def test_check_producer_accepts(producer: str) -> None:
    assert apikeys.check_producer(producer) == producer


@pytest.mark.parametrize(
    "producer", ["", "Newsroom", "-news", ".news", "_news", "news room", "news/room", "x" * 64, "café"]
)
def test_check_producer_refuses(producer: str) -> None:
    with pytest.raises(ValueError, match="producer"):
        apikeys.check_producer(producer)


def test_check_producer_refuses_a_trailing_newline() -> None:
    with pytest.raises(ValueError):
        apikeys.check_producer("newsroom\n")


# --- FirestoreApiKeys over an in-memory Firestore -----------------------------------------------------------


def test_created_key_verifies_and_is_stored_hashed() -> None:
    db = MemoryFirestore()
    keys = apikeys.FirestoreApiKeys(db)

    key, record = keys.create("newsroom", "ci")

    stored = db.collections[apikeys.COLLECTION][record.key_id]
    assert key.split("_", 2)[2] not in str(stored)  # the secret itself is never stored
    assert stored["secret_sha256"] == apikeys.hash_secret(key.split("_", 2)[2])
    assert stored["producer"] == "newsroom" and stored["revoked_at"] is None
    verified = keys.verify(key)
    assert verified == record
    assert verified is not None and verified.active and verified.description == "ci"


def test_create_refuses_an_invalid_producer() -> None:
    db = MemoryFirestore()
    with pytest.raises(ValueError):
        apikeys.FirestoreApiKeys(db).create("Not Valid")
    assert not db.collections.get(apikeys.COLLECTION)


def _stored(db: MemoryFirestore, key_id: str, secret: str, **extra: object) -> None:
    db.collection(apikeys.COLLECTION).document(key_id).set(
        {
            "producer": "newsroom",
            "secret_sha256": apikeys.hash_secret(secret),
            "created_at": datetime(2026, 1, 1, tzinfo=UTC),
            "revoked_at": None,
            "description": "",
            **extra,
        }
    )


SECRET = "S" * 43
OTHER_SECRET = "T" * 43


def test_verify_right_secret_gives_the_key() -> None:
    db = MemoryFirestore()
    _stored(db, "0123456789ab", SECRET)

    key = apikeys.FirestoreApiKeys(db).verify(f"slk_0123456789ab_{SECRET}")

    assert key == apikeys.ApiKey("0123456789ab", "newsroom", datetime(2026, 1, 1, tzinfo=UTC), None, "")


def test_verify_wrong_secret_gives_none() -> None:
    db = MemoryFirestore()
    _stored(db, "0123456789ab", SECRET)
    assert apikeys.FirestoreApiKeys(db).verify(f"slk_0123456789ab_{OTHER_SECRET}") is None


def test_verify_unknown_key_id_gives_none() -> None:
    db = MemoryFirestore()
    _stored(db, "0123456789ab", SECRET)
    assert apikeys.FirestoreApiKeys(db).verify(f"slk_ba9876543210_{SECRET}") is None


def test_verify_malformed_gives_none_without_reading() -> None:
    class Exploding:
        def collection(self, name: str) -> object:
            raise AssertionError("a malformed key must not reach Firestore")

    assert apikeys.FirestoreApiKeys(Exploding()).verify("slk_nope") is None


def test_verify_record_without_hash_gives_none() -> None:
    db = MemoryFirestore()
    _stored(db, "0123456789ab", SECRET)
    del db.collections[apikeys.COLLECTION]["0123456789ab"]["secret_sha256"]
    assert apikeys.FirestoreApiKeys(db).verify(f"slk_0123456789ab_{SECRET}") is None


def test_verify_revoked_gives_none() -> None:
    db = MemoryFirestore()
    _stored(db, "0123456789ab", SECRET, revoked_at=datetime(2026, 2, 1, tzinfo=UTC))
    assert apikeys.FirestoreApiKeys(db).verify(f"slk_0123456789ab_{SECRET}") is None


def test_revoke_then_verify_gives_none() -> None:
    db = MemoryFirestore()
    keys = apikeys.FirestoreApiKeys(db)
    key, record = keys.create("newsroom")

    assert keys.revoke(record.key_id) is True
    assert keys.verify(key) is None
    assert keys.revoke("ffffffffffff") is False
