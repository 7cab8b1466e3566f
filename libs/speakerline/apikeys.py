"""API keys of the HTTP API: their format, how they are stored (hashed), and the Firestore collection holding them.

A key is `slk_<key_id>_<secret>`: `key_id` (12 hex) names the stored record and may appear in logs; `secret`
(43 URL-safe characters, 256 bits) is shown once, when the key is created, and stored only as its SHA-256. A
plain hash is enough (no salt, no slow KDF): the secret is random and long, so there is nothing to brute-force.
Shared by the API (which verifies keys) and `speakerline apikey create|revoke|list` (which manages them).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from speakerline.uploads import PRODUCER_PATTERN

COLLECTION: Final = "api_keys"
PREFIX: Final = "slk"
_KEY = re.compile(r"^slk_(?P<key_id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})\Z")


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    producer: str
    created_at: datetime
    revoked_at: datetime | None = None
    description: str = ""

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse(token: str) -> tuple[str, str] | None:
    """(key_id, secret) of a well-formed key, else None."""
    match = _KEY.match(token)
    return (match["key_id"], match["secret"]) if match else None


def new_key() -> tuple[str, str, str]:
    """A fresh key: (the key to hand out, its key_id, the hash to store)."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    return f"{PREFIX}_{key_id}_{secret}", key_id, hash_secret(secret)


def check_producer(producer: str) -> str:
    if not PRODUCER_PATTERN.match(producer):
        raise ValueError(
            f"producer {producer!r}: lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"
        )
    return producer


class ApiKeyStore(Protocol):
    def verify(self, token: str) -> ApiKey | None:
        """The active key `token` is, or None (malformed, unknown, revoked or wrong secret)."""
        ...


class FirestoreApiKeys:
    """`api_keys/{key_id}` = {producer, secret_sha256, created_at, revoked_at, description}."""

    def __init__(self, client: Any) -> None:  # a google.cloud.firestore.Client
        self._client = client

    def _ref(self, key_id: str) -> Any:
        return self._client.collection(COLLECTION).document(key_id)

    def create(self, producer: str, description: str = "") -> tuple[str, ApiKey]:
        key, key_id, digest = new_key()
        record = ApiKey(key_id, check_producer(producer), datetime.now(UTC), None, description)
        self._ref(key_id).create(
            {
                "producer": record.producer,
                "secret_sha256": digest,
                "created_at": record.created_at,
                "revoked_at": None,
                "description": description,
            }
        )
        return key, record

    def revoke(self, key_id: str) -> bool:
        """False when there is no such key."""
        ref = self._ref(key_id)
        if not ref.get().exists:
            return False
        ref.update({"revoked_at": datetime.now(UTC)})
        return True

    def list(self, producer: str | None = None) -> list[ApiKey]:
        query = self._client.collection(COLLECTION)
        if producer:
            query = query.where(filter=_field_filter("producer", "==", producer))
        return sorted((_record(snap.id, snap.to_dict()) for snap in query.stream()), key=lambda k: k.created_at)

    def verify(self, token: str) -> ApiKey | None:
        parsed = parse(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        snap = self._ref(key_id).get()
        if not snap.exists:
            return None
        doc = snap.to_dict()
        if not hmac.compare_digest(str(doc.get("secret_sha256", "")), hash_secret(secret)):
            return None
        record = _record(key_id, doc)
        return record if record.active else None


def _record(key_id: str, doc: dict[str, Any]) -> ApiKey:
    return ApiKey(
        key_id=key_id,
        producer=str(doc["producer"]),
        created_at=doc["created_at"],
        revoked_at=doc.get("revoked_at"),
        description=str(doc.get("description") or ""),
    )


def _field_filter(path: str, op: str, value: Any) -> Any:
    from google.cloud.firestore_v1.base_query import FieldFilter

    return FieldFilter(path, op, value)
