"""Post-processing: the engine's raw turns → a clean timeline, output.json + RTTM + WebVTT, `job.completed`.

output.json carries both timelines: ``segments`` (overlap-aware) and ``exclusive_segments`` (one speaker at a
time): the engine's own exclusive timeline when the turns JSON has one, else one derived from the cleaned
segments (engines without one, messages from before it existed). RTTM and WebVTT stay overlap-aware.

The job's summary is built once (`timeline_rules.summarize`, the contract's `Summary`): job.completed carries that
object and output.json's ``summary`` is derived from it (`timeline_rules.output_summary`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from postprocess.timeline_rules import (
    PostprocessConfig,
    build_output,
    clean_exclusive,
    clean_with_labels,
    derive_exclusive,
    speech_stats,
    summarize,
)
from speakerline import events, failpoints, runtime, storage
from speakerline.events import DiarizationCompleted, Event, JobCompleted, models
from speakerline.jobpaths import RESULT_FORMATS, JobPaths
from speakerline.timeline import to_rttm, to_webvtt, turns_from_json


@dataclass(frozen=True)
class PostprocessDeps:
    blobs: storage.BlobStore
    results_bucket: str
    source: str
    config: PostprocessConfig


def on_diarization_completed(
    event: DiarizationCompleted, context: runtime.Context, deps: PostprocessDeps
) -> list[Event[Any]]:
    """diarization.completed → output.json, RTTM and WebVTT in the results bucket, and job.completed."""
    data = event.data
    job_id = data.job_id
    raw = json.loads(deps.blobs.read_bytes(data.result.turns_uri))
    turns, labels = clean_with_labels(turns_from_json(raw["segments"]), deps.config)
    if "exclusive_segments" in raw:
        exclusive = clean_exclusive(turns_from_json(raw["exclusive_segments"]), labels, deps.config)
    else:
        exclusive = derive_exclusive(turns, deps.config)
    stats = speech_stats(turns, data.audio.duration_s)
    summary = summarize(stats, num_exclusive_segments=len(exclusive))
    output = build_output(
        turns,
        summary,
        job_id,
        extra={"engine": events.to_json(data.engine), "input": data.request.input.uri},
        stats=stats,
        exclusive=exclusive,
    )
    paths = JobPaths(job_id)
    uris = {fmt: storage.uri(deps.results_bucket, paths.result(fmt)) for fmt in RESULT_FORMATS}
    deps.blobs.upload_bytes(json.dumps(output, indent=2).encode(), uris["json"], "application/json")
    deps.blobs.upload_bytes(to_rttm(turns, job_id).encode(), uris["rttm"], "text/plain")
    deps.blobs.upload_bytes(to_webvtt(turns).encode(), uris["vtt"], "text/vtt")
    failpoints.reached("postprocess.outputs", job_id)
    completed = models.JobCompletedV1Data(
        job_id=job_id,
        request=data.request,
        engine=data.engine,
        result=models.JobCompletedResult(
            output_uri=uris["json"], rttm_uri=uris["rttm"], vtt_uri=uris["vtt"], summary=summary
        ),
    )
    return [JobCompleted.caused_by(event, completed, source=deps.source)]


def on_exhausted(
    event: DiarizationCompleted, context: runtime.Context, error: BaseException, deps: PostprocessDeps
) -> list[Event[Any]]:
    """The last attempt failed too: job.failed, so that the job does not hang while the message is dead-lettered."""
    return [
        events.gave_up(
            event,
            stage="postprocess",
            code="postprocess_error",
            error=error,
            attempt=context.attempt,
            source=deps.source,
        )
    ]
