"""api.auth: API keys, Google-signed ID tokens (real RS256 tokens, verified by google-auth against a fake certs
endpoint), and the token-bucket rate limiter."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from api.auth import Authenticator, Principal, RateLimiter, google_id_token_verifier, parse_producers
from speakerline import apikeys
from tests.api.refusals import refused
from tests.fakes import FakeClock

KEY = "slk_0123456789ab_" + "S" * 43
AUDIENCE = "https://api.example"
EMAIL = "ci@proj.iam.gserviceaccount.com"


class DictKeys:
    """An ApiKeyStore of known keys."""

    def __init__(self, *keys: tuple[str, str]) -> None:
        self._keys = {
            token: apikeys.ApiKey(apikeys.parse(token)[0], producer, datetime(2026, 1, 1, tzinfo=UTC))  # type: ignore[index]
            for token, producer in keys
        }
        self.asked: list[str] = []

    def verify(self, token: str) -> apikeys.ApiKey | None:
        self.asked.append(token)
        return self._keys.get(token)


# --- API keys -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token " + KEY, KEY, "Bearer slk_nope", "Bearer abc"],
)
def test_missing_or_unusable_credentials_are_401_with_www_authenticate(header: str | None) -> None:
    error = refused(lambda: Authenticator(DictKeys((KEY, "newsroom")))(header), 401, "unauthenticated")
    assert error.headers["WWW-Authenticate"].startswith("Bearer")
    assert error.problem().status == 401


def test_unknown_key_is_401() -> None:
    keys = DictKeys((KEY, "newsroom"))
    other = "slk_ba9876543210_" + "S" * 43
    error = refused(lambda: Authenticator(keys)(f"Bearer {other}"), 401, "unauthenticated")
    assert "WWW-Authenticate" in error.headers
    assert keys.asked == [other]


def test_valid_key_gives_its_producer_and_key_id() -> None:
    principal = Authenticator(DictKeys((KEY, "newsroom")))(f"Bearer {KEY}")
    assert principal == Principal("newsroom", "0123456789ab")
    assert principal.rate_key == "0123456789ab"


def test_scheme_is_case_insensitive_and_token_trimmed() -> None:
    assert Authenticator(DictKeys((KEY, "newsroom")))(f"bearer   {KEY}  ").producer == "newsroom"


def test_jwt_shaped_token_without_id_token_verifier_is_401() -> None:
    refused(lambda: Authenticator(DictKeys())("Bearer a.b.c"), 401, "unauthenticated")


def test_parse_producers() -> None:
    assert parse_producers(" CI@Proj.iam.gserviceaccount.com = ci-bot ,x@y.z=news,junk") == {
        "ci@proj.iam.gserviceaccount.com": "ci-bot",
        "x@y.z": "news",
    }
    assert parse_producers("") == {}
    with pytest.raises(ValueError):
        parse_producers("a@b.c=Not Valid")


# --- Google ID tokens -------------------------------------------------------------------------------------------


class _Signing:
    def __init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-signer")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()

    def token(self, **changes: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": "https://accounts.google.com",
            "aud": AUDIENCE,
            "sub": "1234567890",
            "email": EMAIL,
            "email_verified": True,
            "iat": now,
            "exp": now + 300,
            **changes,
        }
        return _encode(self.pem, payload)


def _encode(pem: bytes, payload: dict[str, Any]) -> str:
    """A JWT signed RS256 with header kid "k1", as Google signs ID tokens."""
    signer = crypt.RSASigner.from_string(pem, key_id="k1")  # type: ignore[no-untyped-call]
    token: bytes = jwt.encode(signer, payload)  # type: ignore[no-untyped-call]
    return token.decode()


@pytest.fixture(scope="module")
def signing() -> _Signing:
    return _Signing()


class _Response:
    def __init__(self, body: bytes) -> None:
        self.status = 200
        self.headers: dict[str, str] = {}
        self.data = body


class FakeRequest:
    """A google.auth.transport.Request: answers the certs endpoint with {key id: X.509 certificate}."""

    def __init__(self, certs: dict[str, str]) -> None:
        self._body = json.dumps(certs).encode()
        self.urls: list[str] = []

    def __call__(self, url: str, method: str = "GET", body: Any = None, headers: Any = None, **_: Any) -> _Response:
        self.urls.append(url)
        return _Response(self._body)


def _authenticator(signing: _Signing, certs_request: FakeRequest | None = None) -> Authenticator:
    request = certs_request or FakeRequest({"k1": signing.cert_pem})
    return Authenticator(DictKeys(), google_id_token_verifier(AUDIENCE, certs_request=request), {EMAIL: "ci-bot"})


def test_id_token_of_a_mapped_email_gives_its_producer(signing: _Signing) -> None:
    request = FakeRequest({"k1": signing.cert_pem})
    principal = _authenticator(signing, request)(f"Bearer {signing.token()}")
    assert principal == Principal("ci-bot", None)
    assert principal.rate_key == "id:ci-bot"
    assert request.urls and request.urls[0].startswith("https://www.googleapis.com/")


def test_id_token_email_is_matched_case_insensitively(signing: _Signing) -> None:
    assert _authenticator(signing)(f"Bearer {signing.token(email=EMAIL.upper())}").producer == "ci-bot"


def test_id_token_of_an_unmapped_email_is_403(signing: _Signing) -> None:
    token = signing.token(email="someone@else.iam.gserviceaccount.com")
    error = refused(lambda: _authenticator(signing)(f"Bearer {token}"), 403, "forbidden")
    assert "someone@else" in error.detail


def test_id_token_with_unverified_email_is_403(signing: _Signing) -> None:
    token = signing.token(email_verified=False)
    refused(lambda: _authenticator(signing)(f"Bearer {token}"), 403, "forbidden")


def test_id_token_for_another_audience_is_401(signing: _Signing) -> None:
    token = signing.token(aud="https://other.example")
    error = refused(lambda: _authenticator(signing)(f"Bearer {token}"), 401, "unauthenticated")
    assert "WWW-Authenticate" in error.headers


def test_expired_id_token_is_401(signing: _Signing) -> None:
    now = int(time.time())
    token = signing.token(iat=now - 3600, exp=now - 600)
    refused(lambda: _authenticator(signing)(f"Bearer {token}"), 401, "unauthenticated")


def test_id_token_signed_by_another_key_is_401(signing: _Signing) -> None:
    other = _Signing()
    token = other.token()  # same key id "k1", but the certs endpoint has the first key's certificate
    refused(lambda: _authenticator(signing)(f"Bearer {token}"), 401, "unauthenticated")


def test_tampered_id_token_is_401(signing: _Signing) -> None:
    header, _payload, sig = signing.token().split(".")
    forged = _encode(_Signing().pem, {"email": EMAIL})
    token = ".".join([header, forged.split(".")[1], sig])
    refused(lambda: _authenticator(signing)(f"Bearer {token}"), 401, "unauthenticated")


def test_id_token_from_another_issuer_is_401(signing: _Signing) -> None:
    token = signing.token(iss="https://evil.example")
    refused(lambda: _authenticator(signing)(f"Bearer {token}"), 401, "unauthenticated")


# --- rate limiting ------------------------------------------------------------------------------------------


def test_burst_then_429_with_retry_after() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    for _ in range(3):
        limiter.take("k")

    error = refused(lambda: limiter.take("k"), 429, "rate_limited")
    assert error.headers["Retry-After"] == "1"  # one token a second


def test_retry_after_is_the_wait_for_the_next_token() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=6, burst=1, clock=clock)  # one token every 10 s
    limiter.take("k")
    clock.now += 2.5
    error = refused(lambda: limiter.take("k"), 429, "rate_limited")
    assert error.headers["Retry-After"] == "8"  # 7.5 s, rounded up


def test_tokens_refill_over_time_up_to_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock)
    limiter.take("k")
    limiter.take("k")
    refused(lambda: limiter.take("k"), 429, "rate_limited")

    clock.now += 1.0
    limiter.take("k")  # one token back after a second
    refused(lambda: limiter.take("k"), 429, "rate_limited")

    clock.now += 3600  # a long pause refills only up to the burst
    limiter.take("k")
    limiter.take("k")
    refused(lambda: limiter.take("k"), 429, "rate_limited")


def test_refused_requests_do_not_spend_tokens() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=1, clock=clock)
    limiter.take("k")
    for _ in range(5):
        clock.now += 0.1
        refused(lambda: limiter.take("k"), 429, "rate_limited")
    clock.now += 0.5  # 1 s after the first take in all
    limiter.take("k")


def test_callers_have_independent_buckets() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock)
    limiter.take("a")
    limiter.take("a")
    refused(lambda: limiter.take("a"), 429, "rate_limited")

    limiter.take("b")
    limiter.take("b")
    refused(lambda: limiter.take("b"), 429, "rate_limited")
