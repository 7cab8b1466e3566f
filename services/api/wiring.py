"""Wiring of the API: its deps from the settings, made once per process (`create_app` calls `build`)."""

from __future__ import annotations

from dataclasses import dataclass

from speakerline.bootstrap import Platform
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


def build(settings: Settings) -> Wired:
    import google.cloud.storage as gcs
    from google.cloud import firestore

    from speakerline import apikeys

    from .objects import GcsObjects
    from .store import FirestoreApiStore

    platform = Platform("api", settings)
    db = firestore.Client(project=settings.project)
    deps = ApiDeps(
        config=config(settings, platform.source),
        store=FirestoreApiStore(db),
        objects=GcsObjects(
            gcs.Client(project=settings.project), settings.api_signing_key_file, settings.api_public_storage_url
        ),
        blobs=platform.blobs,
        publisher=platform.publisher,
    )
    audience = settings.api_id_token_audience
    authenticate = auth.Authenticator(
        apikeys.FirestoreApiKeys(db),
        auth.google_id_token_verifier(audience) if audience else None,
        auth.parse_producers(settings.api_id_token_producers),
    )
    limiter = auth.RateLimiter(settings.api_rate_limit_per_minute, settings.api_rate_limit_burst)
    return Wired(deps, authenticate, limiter, settings)
