"""Wiring of the API: `wire(platform)`, as every service, whose `Wiring` carries the ASGI app instead of routes (its
topology entrypoint is `http`: it takes requests, not events). Its deps come from the platform's adapters (Firestore,
Cloud Storage for signed URLs, the publisher), made once per process."""

from __future__ import annotations

from dataclasses import dataclass

from speakerline.bootstrap import ASGIApp, Platform, Wiring
from speakerline.settings import DEFAULT_MAX_UPLOAD_BYTES, Settings, or_default

from . import auth
from .handlers import ApiConfig, ApiDeps


@dataclass(frozen=True)
class Wired:
    deps: ApiDeps
    authenticate: auth.Authenticator
    limiter: auth.RateLimiter
    settings: Settings


def config(settings: Settings, source: str) -> ApiConfig:
    return ApiConfig(
        source=source,
        uploads_bucket=settings.bucket("uploads"),
        work_bucket=settings.bucket("work"),
        results_bucket=settings.bucket("results"),
        max_upload_bytes=or_default(settings.max_upload_bytes, DEFAULT_MAX_UPLOAD_BYTES),
        upload_url_ttl_s=settings.api_upload_url_ttl_s,
        result_url_ttl_s=settings.api_result_url_ttl_s,
    )


def build_wired(platform: Platform) -> Wired:
    """The app's deps, authenticator and rate limiter, from the platform's adapters and settings."""
    from speakerline import apikeys

    from .objects import GcsObjects
    from .store import FirestoreApiStore

    settings = platform.settings
    deps = ApiDeps(
        config=config(settings, platform.source),
        store=FirestoreApiStore(platform.firestore),
        objects=GcsObjects(platform.storage_client, settings.api_signing_key_file, settings.api_public_storage_url),
        blobs=platform.blobs,
        publisher=platform.publisher,
    )
    audience = settings.api_id_token_audience
    authenticate = auth.Authenticator(
        apikeys.FirestoreApiKeys(platform.firestore),
        auth.google_id_token_verifier(audience) if audience else None,
        auth.parse_producers(settings.api_id_token_producers),
    )
    limiter = auth.RateLimiter(settings.api_rate_limit_per_minute, settings.api_rate_limit_burst)
    return Wired(deps, authenticate, limiter, settings)


def wire(platform: Platform) -> Wiring:
    wired = build_wired(platform)

    def app() -> ASGIApp:
        from .app import create_app  # app.py imports this module

        return create_app(wired)

    return Wiring(routes={}, app=app)
