"""Wiring of the ingest service: which handler takes which subscription's events (infra/topology.yaml), with
which deps. Run it with `python -m speakerline.worker ingest` or as the push function (`speakerline.bootstrap`)."""

from __future__ import annotations

from functools import partial

from ingest import gcs_notification, handlers
from speakerline.audio import MediaLimits
from speakerline.bootstrap import Platform, Wiring
from speakerline.events import AudioUploaded
from speakerline.runtime import Route
from speakerline.settings import Settings, or_default


def media_limits(settings: Settings) -> MediaLimits:
    """The input limits the settings give; one left unset (None) keeps MediaLimits' default."""
    default = MediaLimits()
    return MediaLimits(
        max_bytes=or_default(settings.max_upload_bytes, default.max_bytes),
        min_duration_s=or_default(settings.min_duration_s, default.min_duration_s),
        max_duration_s=or_default(settings.max_duration_s, default.max_duration_s),
    )


def build_deps(platform: Platform) -> handlers.IngestDeps:
    """What every handler of the service gets, from the platform's adapters and settings."""
    return handlers.IngestDeps(
        blobs=platform.blobs,
        work_bucket=platform.bucket("work"),
        source=platform.source,
        limits=media_limits(platform.settings),
    )


def wire(platform: Platform) -> Wiring:
    deps = build_deps(platform)
    return Wiring(
        routes={
            "on_object_finalized": Route(
                partial(handlers.on_object_finalized, deps=deps),
                accepts=(gcs_notification.ObjectFinalized,),
                on_exhausted=partial(handlers.upload_exhausted, deps=deps),
            ),
            "on_audio_uploaded": Route(
                partial(handlers.on_audio_uploaded, deps=deps),
                accepts=(AudioUploaded,),
                on_exhausted=partial(handlers.on_exhausted, deps=deps),
                concurrency=2,
            ),
        },
        decoders={"gcs-notification": gcs_notification.decode},
    )
