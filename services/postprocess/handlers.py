"""Post-processing: the engine's raw turns → a clean timeline, output.json + RTTM + WebVTT, `job.completed`.

output.json carries both timelines: ``segments`` (overlap-aware) and ``exclusive_segments`` (one speaker at a
time): the engine's own exclusive timeline when the turns JSON has one, else one derived from the cleaned
segments (engines without one, messages from before it existed). RTTM and WebVTT stay overlap-aware.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from speakerline import storage
from speakerline.events import CloudEvent, caused_event, data_of
from speakerline.timeline import Turn, to_rttm, to_webvtt, turns_from_json
from postprocess.timeline_rules import (
    PostprocessConfig,
    Summary,
    build_output,
    clean_exclusive,
    clean_with_labels,
    derive_exclusive,
    summarize,
)

COMPLETED_IN = "io.speakerline.diarization.completed.v1"
JOB_COMPLETED = "io.speakerline.job.completed.v1"
JOB_FAILED = "io.speakerline.job.failed.v1"


@dataclass(frozen=True)
class PostprocessDeps:
    blobs: storage.BlobStore
    results_bucket: str
    source: str
    config: PostprocessConfig


def event_summary(summary: Summary, turns: list[Turn], exclusive: list[Turn]) -> dict[str, Any]:
    """The job.completed summary (contract shape) from the post-processing summary."""
    return {
        "duration_s": round(summary.duration_s, 3),
        "num_speakers": summary.num_speakers,
        "num_segments": len(turns),
        "num_exclusive_segments": len(exclusive),
        "speech_s": round(summary.total_speech_s, 3),
        "overlap_s": round(summary.overlap_s, 3),
        "speakers": [
            {
                "speaker": s.speaker,
                "talk_time_s": round(s.talk_time_s, 3),
                "share": round(s.share_of_speech, 3),
                "num_segments": s.num_segments,
            }
            for s in summary.speakers
        ],
    }


def on_diarization_completed(event: CloudEvent, deps: PostprocessDeps) -> list[CloudEvent]:
    data = data_of(event)
    job_id = data["job_id"]
    raw = json.loads(deps.blobs.read_bytes(data["result"]["turns_uri"]))
    turns, labels = clean_with_labels(turns_from_json(raw["segments"]), deps.config)
    if "exclusive_segments" in raw:
        exclusive = clean_exclusive(turns_from_json(raw["exclusive_segments"]), labels, deps.config)
    else:
        exclusive = derive_exclusive(turns, deps.config)
    summary = summarize(turns, float(data["audio"]["duration_s"]))
    output = build_output(
        turns,
        summary,
        job_id,
        extra={"engine": data["engine"], "input": data["request"]["input"]["uri"]},
        exclusive=exclusive,
    )
    base = f"results/{job_id}/output"
    uris = {ext: storage.uri(deps.results_bucket, f"{base}.{ext}") for ext in ("json", "rttm", "vtt")}
    deps.blobs.upload_bytes(json.dumps(output, indent=2).encode(), uris["json"], "application/json")
    deps.blobs.upload_bytes(to_rttm(turns, job_id).encode(), uris["rttm"], "text/plain")
    deps.blobs.upload_bytes(to_webvtt(turns).encode(), uris["vtt"], "text/vtt")
    completed = {
        "job_id": job_id,
        "request": data["request"],
        "engine": data["engine"],
        "result": {
            "output_uri": uris["json"],
            "rttm_uri": uris["rttm"],
            "vtt_uri": uris["vtt"],
            "summary": event_summary(summary, turns, exclusive),
        },
    }
    return [caused_event(event, JOB_COMPLETED, completed, source=deps.source)]


def on_exhausted(event: CloudEvent, error: BaseException, deps: PostprocessDeps) -> list[CloudEvent]:
    data = data_of(event)
    failed = {
        "job_id": data["job_id"],
        "request": data["request"],
        "error": {
            "stage": "postprocess",
            "code": "postprocess_error",
            "message": f"Post-processing kept failing: {error}"[:2000],
            "retriable": True,
        },
    }
    return [caused_event(event, JOB_FAILED, failed, source=deps.source)]
