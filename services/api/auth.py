"""Who is calling: an API key (`Authorization: Bearer slk_...`) or, on Cloud Run, a Google-signed ID token of a
service account mapped to a producer; and how often (a token bucket per caller)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from google.auth.exceptions import GoogleAuthError

from speakerline import apikeys

from .problems import ApiError


@dataclass(frozen=True)
class Principal:
    producer: str
    key_id: str | None = None  # None for an ID token

    @property
    def rate_key(self) -> str:
        return self.key_id or f"id:{self.producer}"


IdTokenVerifier = Callable[[str], Mapping[str, Any]]


def google_id_token_verifier(audience: str, certs_request: Any = None) -> IdTokenVerifier:
    """Verifies a Google-signed ID token (signature, expiry, issuer, audience) and returns its claims."""
    from google.auth.transport import requests as google_requests
    from google.oauth2 import id_token

    request = certs_request or google_requests.Request()

    def verify(token: str) -> Mapping[str, Any]:
        claims: Mapping[str, Any] = id_token.verify_oauth2_token(  # type: ignore[no-untyped-call]
            token, request, audience=audience
        )
        return claims

    return verify


def parse_producers(mapping: str) -> dict[str, str]:
    """`email=producer,email=producer` → {email: producer}."""
    pairs = (item.split("=", 1) for item in mapping.split(",") if "=" in item)
    return {email.strip().lower(): apikeys.check_producer(producer.strip()) for email, producer in pairs}


class Authenticator:
    def __init__(
        self,
        keys: apikeys.ApiKeyStore,
        id_tokens: IdTokenVerifier | None = None,
        id_token_producers: Mapping[str, str] | None = None,
    ) -> None:
        self._keys = keys
        self._id_tokens = id_tokens
        self._producers = dict(id_token_producers or {})

    def __call__(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthenticated("Send an API key: 'Authorization: Bearer <key>' (speakerline apikey create).")
        if token.startswith(apikeys.PREFIX + "_"):
            key = self._keys.verify(token)
            if key is None:
                raise _unauthenticated("The API key is unknown or revoked.")
            return Principal(key.producer, key.key_id)
        if self._id_tokens is not None and token.count(".") == 2:
            return self._from_id_token(token)
        raise _unauthenticated("The bearer token is neither an API key nor an accepted ID token.")

    def _from_id_token(self, token: str) -> Principal:
        assert self._id_tokens is not None
        try:
            claims = self._id_tokens(token)
        except (ValueError, GoogleAuthError) as exc:  # bad signature/audience/expiry, wrong issuer, no certs
            raise _unauthenticated(f"The ID token is not valid: {exc}") from exc
        email = str(claims.get("email") or "").lower()
        producer = self._producers.get(email) if claims.get("email_verified", True) else None
        if producer is None:
            raise ApiError(403, "forbidden", f"{email or 'This identity'} is not mapped to a producer.")
        return Principal(producer)


def _unauthenticated(detail: str) -> ApiError:
    return ApiError(401, "unauthenticated", detail, headers={"WWW-Authenticate": 'Bearer realm="speakerline"'})


class RateLimiter:
    """A token bucket per caller: `burst` requests at once, refilled at `per_minute`. In memory, so per API
    instance: Cloud Run's max instances bound the total."""

    def __init__(self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> None:
        """Spend one token, or raise 429 with the seconds until the next one."""
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(key, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                retry = max(1, int((1.0 - tokens) / self._rate + 0.999))
                raise ApiError(
                    429, "rate_limited", f"Too many requests; retry in {retry} s.", headers={"Retry-After": str(retry)}
                )
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > 10_000:  # forget idle callers (a full bucket is the default anyway)
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 3600}
