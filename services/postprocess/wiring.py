"""Wiring of the post-processing service: its one route and the deps it is built from (see speakerline.bootstrap)."""

from __future__ import annotations

from functools import partial

from postprocess import handlers
from postprocess.timeline_rules import PostprocessConfig
from speakerline import runtime
from speakerline.bootstrap import Platform, Wiring
from speakerline.events import DiarizationCompleted
from speakerline.settings import or_default


def config(merge_gap_s: float | None, min_segment_s: float | None) -> PostprocessConfig:
    """The thresholds from settings; one left unset (None) keeps PostprocessConfig's default, written there."""
    defaults = PostprocessConfig()
    return PostprocessConfig(
        merge_gap_s=or_default(merge_gap_s, defaults.merge_gap_s),
        min_segment_s=or_default(min_segment_s, defaults.min_segment_s),
    )


def build_deps(platform: Platform) -> handlers.PostprocessDeps:
    """What the handler gets, from the platform's adapters and settings."""
    settings = platform.settings
    return handlers.PostprocessDeps(
        blobs=platform.blobs,
        results_bucket=platform.bucket("results"),
        source=platform.source,
        config=config(settings.merge_gap_s, settings.min_segment_s),
    )


def wire(platform: Platform) -> Wiring:
    deps = build_deps(platform)
    route = runtime.Route(
        partial(handlers.on_diarization_completed, deps=deps),
        accepts=(DiarizationCompleted,),
        on_exhausted=partial(handlers.on_exhausted, deps=deps),
    )
    # "on_diarization_completed": the handler of the postprocess-diarization subscription in infra/topology.yaml
    return Wiring(routes={"on_diarization_completed": route})
