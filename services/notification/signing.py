"""Webhook signatures, Stripe-style: ``Speakerline-Signature: t=<unix>,v1=<hex hmac>``.

The HMAC-SHA256 covers ``f"{t}."`` followed by the exact body bytes. Binding the timestamp into the
MAC lets receivers reject replays of an old, validly signed request; signing raw bytes (not a
re-serialised JSON) avoids any canonicalisation mismatch between sender and receiver.

The recipe for receivers lives in WEBHOOKS.md next to this module.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

__all__ = [
    "CONTENT_TYPE",
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "SIGNATURE_HEADER",
    "SIGNATURE_SCHEME",
    "sign",
    "signature_headers",
    "verify",
]

SIGNATURE_HEADER = "Speakerline-Signature"
EVENT_ID_HEADER = "Speakerline-Event-Id"
EVENT_TYPE_HEADER = "Speakerline-Event-Type"
CONTENT_TYPE = "application/json"
# Versioned like Stripe's "v1" so a future scheme can be sent alongside without breaking receivers.
SIGNATURE_SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300


def _mac(body: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, now: int, *, previous: Sequence[str] = ()) -> str:
    """The ``Speakerline-Signature`` header value for `body` sent at unix time `now`: one ``v1=`` made with
    `secret`, then one with each `previous` key (a key being rotated out), so a receiver verifies with either."""
    if not secret or not all(previous):
        # An empty key still produces a valid-looking MAC that anyone can forge.
        raise ValueError("webhook secret must not be empty")
    keys = [secret, *(key for key in dict.fromkeys(previous) if key != secret)]
    return f"t={now}," + ",".join(f"{SIGNATURE_SCHEME}={_mac(body, key, now)}" for key in keys)


def signature_headers(
    body: bytes, secret: str, now: int, *, event_id: str, event_type: str, previous: Sequence[str] = ()
) -> dict[str, str]:
    """All headers of a webhook request; the event id lets receivers dedupe redeliveries."""
    return {
        "Content-Type": CONTENT_TYPE,
        SIGNATURE_HEADER: sign(body, secret, now, previous=previous),
        EVENT_ID_HEADER: event_id,
        EVENT_TYPE_HEADER: event_type,
    }


def verify(body: bytes, header: str, secret: str, now: int, tolerance_s: int = DEFAULT_TOLERANCE_S) -> bool:
    """Whether `header` is a valid signature of `body` made within `tolerance_s` of `now`.

    Several ``v1=`` entries are accepted (any may match) so a sender can sign with an old and a
    new secret while a rotation is in progress. Timestamps too far in the future are rejected as
    well as stale ones: a clock skewed far ahead would otherwise extend the replay window.
    """
    if not secret:
        return False
    timestamp, candidates = _parse_header(header)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_s:
        return False
    expected = _mac(body, secret, timestamp)
    # compare_digest on every candidate (no early exit on the content) keeps timing independent
    # of how many leading characters an attacker guessed right.
    matches = [hmac.compare_digest(expected.encode(), c.encode()) for c in candidates]
    return any(matches)


def _parse_header(header: str) -> tuple[int | None, list[str]]:
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if not value.isascii() or not value.isdigit() or timestamp is not None:
                return None, []  # malformed or duplicated timestamps are ambiguous: refuse
            timestamp = int(value)
        elif key == SIGNATURE_SCHEME and value.isascii():
            candidates.append(value)
    return timestamp, candidates
