"""Ingest handlers: plain functions `event, deps -> new events`.

- `on_object_finalized`: an upload landed in the uploads bucket → announce it as `audio.uploaded` (the job id is
  derived from bucket/object/generation, so a repeated notification is the same job; options come from the
  object's custom metadata).
- `on_audio_uploaded`: validate the file by its content and normalize it to 16 kHz mono WAV in the work bucket
  → `audio.ingested`, or `job.rejected` with a machine-readable code and a human message.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speakerline import storage
from speakerline.audio import MediaLimits, Rejection, ingest_file
from speakerline.events import CloudEvent, caused_event, data_of
from speakerline.jobs import job_id_for_object

UPLOADED = "io.speakerline.audio.uploaded.v1"
INGESTED = "io.speakerline.audio.ingested.v1"
REJECTED = "io.speakerline.job.rejected.v1"
FAILED = "io.speakerline.job.failed.v1"

# Custom metadata keys a producer sets on the uploaded object (x-goog-meta-<key>).
METADATA_OPTIONS = ("num_speakers", "min_speakers", "max_speakers")
METADATA_WEBHOOK = "webhook_url"
METADATA_CORRELATION = "correlation_id"
METADATA_FILENAME = "filename"


@dataclass(frozen=True)
class IngestDeps:
    blobs: storage.BlobStore
    work_bucket: str
    source: str
    limits: MediaLimits
    scratch_dir: Path | None = None


def _event(event_type: str, data: Mapping[str, Any], cause: CloudEvent, deps: IngestDeps) -> CloudEvent:
    return caused_event(cause, event_type, data, source=deps.source)


def _rejected(
    cause: CloudEvent, deps: IngestDeps, job_id: str, request: Mapping[str, Any] | None, code: str, message: str
) -> list[CloudEvent]:
    data: dict[str, Any] = {
        "job_id": job_id,
        "error": {"stage": "ingest", "code": code, "message": message, "retriable": False},
    }
    if request is not None:
        data["request"] = request
    return [_event(REJECTED, data, cause, deps)]


def options_from_metadata(metadata: Mapping[str, str]) -> tuple[dict[str, int], str | None]:
    """Speaker options from object metadata; the error says which value is wrong."""
    options: dict[str, int] = {}
    for key in METADATA_OPTIONS:
        raw = metadata.get(key)
        if raw is None or raw == "":
            continue
        try:
            value = int(raw)
        except ValueError:
            return {}, f"Object metadata {key}={raw!r} is not a whole number."
        options[key] = value
    return options, options_problem(options)


def options_problem(options: Mapping[str, int]) -> str | None:
    """Why these speaker options cannot be honoured, or None."""
    for key, value in options.items():
        if not 1 <= value <= 32:
            return f"{key}={value} is outside 1..32."
    if "num_speakers" in options and ("min_speakers" in options or "max_speakers" in options):
        return "Give num_speakers or a min_speakers/max_speakers range, not both."
    low, high = options.get("min_speakers"), options.get("max_speakers")
    if low is not None and high is not None and low > high:
        return f"min_speakers={low} is greater than max_speakers={high}."
    return None


def on_object_finalized(event: CloudEvent, deps: IngestDeps) -> list[CloudEvent]:
    obj = data_of(event)
    bucket, name, generation = obj["bucket"], obj["name"], str(obj["generation"])
    job_id = job_id_for_object(bucket, name, generation)
    metadata: Mapping[str, str] = obj.get("metadata") or {}
    options, problem = options_from_metadata(metadata)
    request: dict[str, Any] = {
        "input": {
            "uri": storage.uri(bucket, name),
            "generation": generation,
            "size_bytes": int(obj.get("size") or 0),
            "filename": metadata.get(METADATA_FILENAME) or name.rsplit("/", 1)[-1],
        },
        "options": {} if problem else options,
        "submitted_by": metadata.get("submitted_by") or "gcs-notification",
    }
    if obj.get("contentType"):
        request["input"]["content_type"] = obj["contentType"]
    if obj.get("md5Hash"):
        request["input"]["md5_hash"] = obj["md5Hash"]
    for key in (METADATA_WEBHOOK, METADATA_CORRELATION):
        if metadata.get(key):
            request[key] = metadata[key]
    if problem:
        return _rejected(event, deps, job_id, request, "invalid_options", problem)
    return [_event(UPLOADED, {"job_id": job_id, "request": request}, event, deps)]


def on_audio_uploaded(event: CloudEvent, deps: IngestDeps) -> list[CloudEvent]:
    data = data_of(event)
    job_id, request = data["job_id"], data["request"]
    problem = options_problem(request["options"])
    if problem:
        return _rejected(event, deps, job_id, request, "invalid_options", problem)
    try:
        info = deps.blobs.stat(request["input"]["uri"])
    except storage.ObjectNotFound:
        return _rejected(
            event,
            deps,
            job_id,
            request,
            "input_not_found",
            f"{request['input']['uri']} does not exist (deleted, or never uploaded).",
        )
    if request["input"].get("generation") and request["input"]["generation"] != info.generation:
        return _rejected(
            event,
            deps,
            job_id,
            request,
            "input_replaced",
            "The object was overwritten after this upload; the newer upload is its own job.",
        )

    with tempfile.TemporaryDirectory(dir=deps.scratch_dir, prefix="ingest-") as tmp:
        wav = Path(tmp) / "audio.wav"
        with deps.blobs.open_read(info.uri) as src:
            outcome = ingest_file(src, info.size_bytes, wav, deps.limits)
        if isinstance(outcome, Rejection):
            return _rejected(event, deps, job_id, request, outcome.code, outcome.message)
        audio_uri = storage.uri(deps.work_bucket, f"jobs/{job_id}/audio.wav")
        deps.blobs.upload_file(wav, audio_uri, "audio/wav")
    ingested = {
        "job_id": job_id,
        "request": request,
        "audio": {
            "uri": audio_uri,
            "sample_rate": outcome.sample_rate,
            "channels": outcome.channels,
            "duration_s": round(outcome.duration_s, 3),
            "size_bytes": outcome.size_bytes,
        },
        "source": {
            "format": outcome.source_format,
            "codec": outcome.source_codec,
            "sample_rate": outcome.source_sample_rate,
            "channels": outcome.source_channels,
            "size_bytes": info.size_bytes,
        },
    }
    return [_event(INGESTED, ingested, event, deps)]


def on_exhausted(event: CloudEvent, error: BaseException, deps: IngestDeps) -> list[CloudEvent]:
    """Last delivery attempt failed (storage outage, a bug): tell the producer instead of going silent."""
    data = data_of(event)
    if event["type"] != UPLOADED:
        return []
    failed = {
        "job_id": data["job_id"],
        "request": data["request"],
        "error": {
            "stage": "ingest",
            "code": "ingest_error",
            "message": f"Ingest kept failing: {error}"[:2000],
            "retriable": True,
        },
    }
    return [_event(FAILED, failed, event, deps)]
