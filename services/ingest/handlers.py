"""Ingest handlers: plain functions `on_<event>(event, context, deps) -> the events to publish`, each named as its
route in infra/topology.yaml (`handler:`).

- `on_object_finalized`: an upload landed in the uploads bucket (`ObjectFinalized`) → announce it as `AudioUploaded`
  (the job id is derived from bucket/object/generation, so a repeated notification is the same job; options come
  from the object's custom metadata), or `JobRejected` when that metadata is invalid.
- `upload_exhausted`: the last delivery attempt of `on_object_finalized` failed → `JobFailed`, so the upload is not
  lost.
- `on_audio_uploaded`: validate the file by its content and normalize it to 16 kHz mono WAV in the work bucket
  → `AudioIngested`, or `JobRejected` with a machine-readable code and a human message.
- `on_exhausted`: the last delivery attempt of `on_audio_uploaded` failed → `JobFailed`.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from ingest.gcs_notification import ObjectFinalized
from speakerline import failpoints, runtime, speaker_options, storage, uploads
from speakerline.audio import MediaLimits, Rejection, ingest_file
from speakerline.events import (
    AudioIngested,
    AudioUploaded,
    Event,
    JobFailed,
    JobRejected,
    gave_up,
    job_failed,
    job_rejected,
    models,
)
from speakerline.jobpaths import JobPaths
from speakerline.jobs import job_id_for_object


@dataclass(frozen=True)
class IngestDeps:
    blobs: storage.BlobStore
    work_bucket: str
    source: str
    limits: MediaLimits
    scratch_dir: Path | None = None


def _rejected(
    cause: Event[Any], deps: IngestDeps, job_id: str, request: models.Request | None, code: str, message: str
) -> JobRejected:
    return job_rejected(cause, job_id=job_id, request=request, code=code, message=message, source=deps.source)


# ASCII digits only: int() would also take "1_0" (10), "٣" (3) and a 100,000-digit string.
_WHOLE_NUMBER: Final = re.compile(r"[+-]?[0-9]{1,9}")
#: The schema's maxLength of the display-only values, which are cut to fit rather than refused.
_MAX_FILENAME: Final = 1024
_MAX_SUBMITTED_BY: Final = 256


def options_from_metadata(metadata: Mapping[str, str]) -> tuple[models.Options, str | None]:
    """Speaker options from object metadata; the error says which value is wrong."""
    values: dict[str, int] = {}
    for key in uploads.OPTIONS:
        raw = metadata.get(key)
        if raw is None or raw == "":
            continue
        if not _WHOLE_NUMBER.fullmatch(raw.strip()):
            return models.Options(), f"Object metadata {key}={_shown(raw)} is not a whole number."
        value = int(raw)
        values[key] = value
    low, high = values.get(uploads.MIN_SPEAKERS), values.get(uploads.MAX_SPEAKERS)
    found = speaker_options.problems(values.get(uploads.NUM_SPEAKERS), low, high)
    # A count out of range is reported before the model (which would refuse it too), for a message the uploader
    # understands.
    if found and found[0].problem is speaker_options.Problem.OUT_OF_RANGE:
        return models.Options(), f"{found[0].message}."
    options = models.Options(**values)
    return options, options_problem(options)


def options_problem(options: models.Options) -> str | None:
    """Why these speaker options cannot be honoured, or None."""
    found = speaker_options.problems(options.num_speakers, options.min_speakers, options.max_speakers)
    return f"{found[0].message}." if found else None


def _shown(value: str, limit: int = 60) -> str:
    """A metadata value quoted for a message, cut when long (a message must stay readable)."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value)} characters)"


def metadata_problem(key: str, value: str) -> str | None:
    """Why the request schema would refuse metadata `key`=`value` (webhook_url, correlation_id), or None. These
    are instructions the producer relies on (where to be called back, what to be called back with): refused
    with a reason, never silently dropped, and never left to fail every delivery of the notification."""
    try:
        models.Request.model_validate({"input": {"uri": "gs://bucket/object"}, "options": {}, key: value})
    except ValidationError as exc:
        return f"Object metadata {key}={_shown(value)} is not valid: {exc.errors()[0]['msg']}."
    return None


def _metadata_job_id(metadata: Mapping[str, str]) -> str | None:
    """The job id the API chose for a signed upload; None (derive one) when absent or malformed."""
    value = metadata.get(uploads.JOB_ID)
    return value if value and uploads.JOB_ID_PATTERN.match(value) else None


def on_object_finalized(
    event: ObjectFinalized, context: runtime.Context, deps: IngestDeps
) -> list[AudioUploaded | JobRejected]:
    obj = event.data
    metadata = obj.metadata or {}
    job_id = _metadata_job_id(metadata) or job_id_for_object(obj.bucket, obj.name, obj.generation)
    producer = metadata.get(uploads.PRODUCER)
    options, problem = options_from_metadata(metadata)
    code = "invalid_options"
    instructions: dict[str, str | None] = {}
    for key in (uploads.WEBHOOK_URL, uploads.CORRELATION_ID):
        value = metadata.get(key) or None
        bad = metadata_problem(key, value) if value else None
        instructions[key] = None if bad else value
        if bad and not problem:
            problem, code = bad, "invalid_metadata"
    filename = metadata.get(uploads.FILENAME) or obj.name.rsplit("/", 1)[-1]
    # Values the object does not have are None: the payload leaves them out.
    request = models.Request(
        input=models.Input(
            uri=storage.uri(obj.bucket, obj.name),
            generation=obj.generation,
            size_bytes=obj.size or 0,
            filename=filename[:_MAX_FILENAME],
            content_type=obj.contentType or None,
            md5_hash=obj.md5Hash or None,
        ),
        options=models.Options() if problem else options,
        webhook_url=instructions[uploads.WEBHOOK_URL],
        correlation_id=instructions[uploads.CORRELATION_ID],
        submitted_by=(metadata.get(uploads.SUBMITTED_BY) or "gcs-notification")[:_MAX_SUBMITTED_BY],
        producer=producer if producer and uploads.PRODUCER_PATTERN.match(producer) else None,
    )
    if problem:
        return [_rejected(event, deps, job_id, request, code, problem)]
    uploaded = models.AudioUploadedV1Data(job_id=job_id, request=request)
    return [AudioUploaded.caused_by(event, uploaded, source=deps.source)]


def upload_exhausted(
    event: ObjectFinalized, context: runtime.Context, error: BaseException, deps: IngestDeps
) -> list[JobFailed]:
    """Last delivery attempt of an upload's notification failed (a bug, an outage): fail its job, so that the
    uploader hears of it, instead of the upload waiting unannounced in the dead-letter topic."""
    obj = event.data
    job_id = _metadata_job_id(obj.metadata or {}) or job_id_for_object(obj.bucket, obj.name, obj.generation)
    try:
        request: models.Request | None = models.Request(
            input=models.Input(uri=storage.uri(obj.bucket, obj.name), generation=obj.generation),
            options=models.Options(),
            submitted_by="gcs-notification",
        )
    except ValidationError:
        request = None  # the job is failed all the same; the dead-lettered notification has the details
    return [
        job_failed(
            event,
            job_id=job_id,
            request=request,
            stage="ingest",
            code="ingest_error",
            message=f"Ingest kept failing: {error}",
            retriable=True,
            attempt=context.attempt,
            source=deps.source,
        )
    ]


def on_audio_uploaded(
    event: AudioUploaded, context: runtime.Context, deps: IngestDeps
) -> list[AudioIngested | JobRejected]:
    job_id, request = event.data.job_id, event.data.request
    problem = options_problem(request.options)
    if problem:
        return [_rejected(event, deps, job_id, request, "invalid_options", problem)]
    try:
        info = deps.blobs.stat(request.input.uri)
    except storage.ObjectNotFound:
        message = f"{request.input.uri} does not exist (deleted, or never uploaded)."
        return [_rejected(event, deps, job_id, request, "input_not_found", message)]
    if request.input.generation and request.input.generation != info.generation:
        message = "The object was overwritten after this upload; the newer upload is its own job."
        return [_rejected(event, deps, job_id, request, "input_replaced", message)]

    failpoints.reached("ingest.normalise", job_id)
    with tempfile.TemporaryDirectory(dir=deps.scratch_dir, prefix="ingest-") as tmp:
        wav = Path(tmp) / "audio.wav"
        with deps.blobs.open_read(info.uri) as src:
            outcome = ingest_file(src, info.size_bytes, wav, deps.limits)
        if isinstance(outcome, Rejection):
            return [_rejected(event, deps, job_id, request, outcome.code, outcome.message)]
        audio_uri = storage.uri(deps.work_bucket, JobPaths(job_id).normalized_audio)
        deps.blobs.upload_file(wav, audio_uri, "audio/wav")
    ingested = models.AudioIngestedV1Data(
        job_id=job_id,
        request=request,
        audio=models.Audio(
            uri=audio_uri,
            sample_rate=outcome.sample_rate,
            channels=outcome.channels,
            duration_s=round(outcome.duration_s, 3),
            size_bytes=outcome.size_bytes,
        ),
        source=models.Source(
            format=outcome.source_format,
            codec=outcome.source_codec,
            sample_rate=outcome.source_sample_rate,
            channels=outcome.source_channels,
            size_bytes=info.size_bytes,
        ),
    )
    return [AudioIngested.caused_by(event, ingested, source=deps.source)]


def on_exhausted(
    event: AudioUploaded, context: runtime.Context, error: BaseException, deps: IngestDeps
) -> list[JobFailed]:
    """Last delivery attempt failed (storage outage, a bug): tell the producer instead of going silent."""
    return [
        gave_up(event, stage="ingest", code="ingest_error", error=error, attempt=context.attempt, source=deps.source)
    ]
