"""Wiring of the post-processing service (done once per process) and its two entry points."""

from __future__ import annotations

import os
from functools import partial

import functions_framework
import google.cloud.storage as gcs

from speakerline import runtime, service
from speakerline.storage import GcsBlobStore
from postprocess import handlers
from postprocess.timeline_rules import PostprocessConfig

NAME = "postprocess"


@service.lazy
def build() -> runtime.ServiceDef:
    settings = service.Settings.from_env()
    defaults = PostprocessConfig()
    deps = handlers.PostprocessDeps(
        blobs=GcsBlobStore(gcs.Client(project=settings.project)),
        results_bucket=settings.bucket("results"),
        source=settings.source(NAME),
        config=PostprocessConfig(
            merge_gap_s=float(os.environ.get("SPEAKERLINE_MERGE_GAP_S", defaults.merge_gap_s)),
            min_segment_s=float(os.environ.get("SPEAKERLINE_MIN_SEGMENT_S", defaults.min_segment_s)),
        ),
    )
    route = runtime.Route(
        partial(handlers.on_diarization_completed, deps=deps),
        frozenset({handlers.COMPLETED_IN}),
        on_exhausted=partial(handlers.on_exhausted, deps=deps),
    )
    return runtime.ServiceDef(
        name=NAME, routes={"diarization": route}, publisher=service.publisher(settings), topology=settings.topology
    )


entrypoint = functions_framework.cloud_event(service.push_entrypoint(NAME, build))
http_entrypoint = functions_framework.http(service.push_http_entrypoint(NAME, build))


def main() -> None:
    service.run_worker(NAME, build)
