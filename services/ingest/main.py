"""Wiring of the ingest service (done once per process) and its two entry points."""

from __future__ import annotations

import os
from functools import partial

import functions_framework
import google.cloud.storage as gcs

from speakerline import runtime, service
from speakerline.audio import MediaLimits
from speakerline.storage import GcsBlobStore
from ingest import gcs_notification, handlers

NAME = "ingest"


def limits_from_env() -> MediaLimits:
    defaults = MediaLimits()
    return MediaLimits(
        max_bytes=int(os.environ.get("SPEAKERLINE_MAX_UPLOAD_BYTES", defaults.max_bytes)),
        min_duration_s=float(os.environ.get("SPEAKERLINE_MIN_DURATION_S", defaults.min_duration_s)),
        max_duration_s=float(os.environ.get("SPEAKERLINE_MAX_DURATION_S", defaults.max_duration_s)),
    )


@service.lazy
def build() -> runtime.ServiceDef:
    settings = service.Settings.from_env()
    deps = handlers.IngestDeps(
        blobs=GcsBlobStore(gcs.Client(project=settings.project)),
        work_bucket=settings.bucket("work"),
        source=settings.source(NAME),
        limits=limits_from_env(),
    )
    return runtime.ServiceDef(
        name=NAME,
        routes={
            "gcs_upload": runtime.Route(
                partial(handlers.on_object_finalized, deps=deps), frozenset({gcs_notification.OBJECT_FINALIZED})
            ),
            "audio_uploaded": runtime.Route(
                partial(handlers.on_audio_uploaded, deps=deps),
                frozenset({handlers.UPLOADED}),
                on_exhausted=partial(handlers.on_exhausted, deps=deps),
                concurrency=2,
            ),
        },
        publisher=service.publisher(settings),
        topology=settings.topology,
        decoders={"gcs-notification": gcs_notification.decode},
    )


entrypoint = functions_framework.cloud_event(service.push_entrypoint(NAME, build))
http_entrypoint = functions_framework.http(service.push_http_entrypoint(NAME, build))


def main() -> None:
    service.run_worker(NAME, build)
