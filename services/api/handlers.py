"""What each endpoint does: plain functions of the request, the principal and the deps (`create_upload`, `submit_job`,
`get_job`, ...) that return the result, no HTTP in them (app.py maps them to routes, ApiError to problem answers)."""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from speakerline import jobdoc, storage, uploads
from speakerline.events import AudioUploaded, JobDeleted, models
from speakerline.jobpaths import JobPaths
from speakerline.pubsub import EventPublisher

from . import views
from .auth import Principal
from .objects import ObjectStore
from .problems import ApiError, not_found
from .schemas import Accepted, JobRequest, SpeakerOptions, Upload, UploadRequest
from .store import ApiStore, Doc, InvalidPageToken

# Media types a producer may declare; ingest decides by the content, this only refuses what cannot be audio.
_MEDIA_PREFIXES: Final = ("audio/", "video/")
_MEDIA_TYPES: Final = frozenset({"application/ogg", "application/octet-stream"})
_ID_NAMESPACE: Final = uuid.UUID("0b7f6a4e-2c4d-4f7a-9a51-5e1f2d8c3b77")  # fixed: derived event ids must not change


@dataclass(frozen=True)
class ApiConfig:
    source: str
    uploads_bucket: str
    work_bucket: str
    results_bucket: str
    max_upload_bytes: int
    upload_url_ttl_s: int
    result_url_ttl_s: int


@dataclass(frozen=True)
class ApiDeps:
    config: ApiConfig
    store: ApiStore
    objects: ObjectStore
    blobs: storage.BlobStore
    publisher: EventPublisher


def new_job_id() -> str:
    return "job_" + secrets.token_hex(12)


def _mib(size: int) -> str:
    return f"{size / 1024**2:.1f} MiB"


def _metadata(principal: Principal, job_id: str, body: SpeakerOptions, file_name: str) -> dict[str, str]:
    values: dict[str, Any] = {
        uploads.JOB_ID: job_id,
        uploads.PRODUCER: principal.producer,
        uploads.SUBMITTED_BY: "api",
        uploads.FILENAME: file_name,
        **body.options(),
        uploads.WEBHOOK_URL: body.webhook_url,
        uploads.CORRELATION_ID: body.correlation_id,
    }
    return {key: str(value) for key, value in values.items() if value is not None}


def create_upload(body: UploadRequest, principal: Principal, deps: ApiDeps) -> Upload:
    """A signed PUT URL for one new object of the uploads bucket; its finalize notification starts job `job_id`."""
    media = body.content_type.lower()
    if not (media.startswith(_MEDIA_PREFIXES) or media in _MEDIA_TYPES):
        raise ApiError(422, "unsupported_format", f"{body.content_type} is not audio or video.")
    if body.size > deps.config.max_upload_bytes:
        limit = deps.config.max_upload_bytes
        raise ApiError(422, "file_too_large", f"The file is {_mib(body.size)}; the limit is {_mib(limit)}.")
    job_id = new_job_id()
    file_name = uploads.safe_file_name(body.file_name)
    uri = storage.uri(deps.config.uploads_bucket, JobPaths(job_id).upload(body.file_name))
    headers = {
        "content-type": body.content_type,
        # One URL, one object: the PUT may create it but never overwrite it (a second PUT gets 412).
        "x-goog-if-generation-match": "0",
        # Cloud Storage refuses a body larger than declared (the limits were checked on the declared size).
        "x-goog-content-length-range": f"0,{body.size}",
        **{f"x-goog-meta-{k}": v for k, v in _metadata(principal, job_id, body, file_name).items()},
    }
    url = deps.objects.sign_put(uri, headers, deps.config.upload_url_ttl_s)
    deps.store.claim(job_id, principal.producer, file_name)
    return Upload(
        job_id=job_id, upload_url=url, upload_headers=headers, gs_uri=uri, expires_in=deps.config.upload_url_ttl_s
    )


def _body_hash(body: JobRequest) -> str:
    return hashlib.sha256(json.dumps(body.model_dump(exclude_none=True), sort_keys=True).encode()).hexdigest()


def submit_job(body: JobRequest, idempotency_key: str | None, principal: Principal, deps: ApiDeps) -> Accepted:
    """Announce an object already in the uploads bucket as a job (audio.uploaded)."""
    bucket, _ = storage.parse_uri(body.input_uri)
    if bucket != deps.config.uploads_bucket:
        raise ApiError(422, "input_not_allowed", f"input_uri must be in gs://{deps.config.uploads_bucket}/.")
    obj = deps.objects.stat(body.input_uri)
    owner = (obj.metadata.get(uploads.PRODUCER) if obj else None) or principal.producer
    if obj is None or owner != principal.producer:
        raise ApiError(422, "input_not_found", f"{body.input_uri} does not exist.")

    scope = None
    if idempotency_key is not None:
        scope = hashlib.sha256(f"{principal.producer}\0{idempotency_key}".encode()).hexdigest()
        job_id = "job_" + scope[:24]
        record = {
            "producer": principal.producer,
            "body_sha256": _body_hash(body),
            "job_id": job_id,
            "published": False,
            "created_at": datetime.now(UTC),
        }
        existing = deps.store.reserve(scope, record)
        if existing is not None:
            if existing.get("body_sha256") != record["body_sha256"]:
                raise ApiError(
                    409, "idempotency_key_reused", "This Idempotency-Key was used with another request body."
                )
            if existing.get("published"):
                return Accepted(job_id=job_id, status=_status(deps, job_id))
    else:
        job_id = new_job_id()

    file_name = obj.metadata.get(uploads.FILENAME) or obj.uri.rsplit("/", 1)[-1]
    deps.store.claim(job_id, principal.producer, file_name)
    request = models.Request(
        input=models.Input(
            uri=obj.uri,
            generation=obj.generation,
            size_bytes=obj.size,
            content_type=obj.content_type or None,
            filename=file_name,
        ),
        options=models.Options(**body.options()),
        webhook_url=body.webhook_url,
        correlation_id=body.correlation_id,
        submitted_by="api",
        producer=principal.producer,
    )
    # The event id follows from the job id: publishing again after a crash is a duplicate the consumers drop.
    event = AudioUploaded.new(
        models.AudioUploadedV1Data(job_id=job_id, request=request),
        source=deps.config.source,
        event_id=str(uuid.uuid5(_ID_NAMESPACE, f"{job_id}|uploaded")),
    )
    deps.publisher.publish([event])
    if scope is not None:
        deps.store.mark_published(scope)
    return Accepted(job_id=job_id, status=_status(deps, job_id))


def _status(deps: ApiDeps, job_id: str) -> Any:
    doc = deps.store.job(job_id)
    return doc.get("status") if doc else views.PENDING


def owned(job_id: str, principal: Principal, deps: ApiDeps) -> tuple[Doc | None, Doc | None]:
    """(job document, claim) of a job of this producer; 404 for any other (unknown, or another producer's)."""
    if not uploads.JOB_ID_PATTERN.match(job_id):
        raise not_found(job_id)
    doc = deps.store.job(job_id)
    claim = None if doc and jobdoc.request_of(doc).get("producer") else deps.store.claim_of(job_id)
    if views.owner(doc, claim) != principal.producer:
        raise not_found(job_id)
    return doc, claim


def get_job(job_id: str, principal: Principal, deps: ApiDeps, *, segments: bool = True) -> dict[str, Any]:
    doc, claim = owned(job_id, principal, deps)
    if doc is None:
        assert claim is not None
        return views.pending_view(job_id, claim)
    view = views.job_view(doc)
    uri = views.result_uri(doc, "json")
    if segments and uri and view["status"] == "COMPLETED":
        try:
            output = json.loads(deps.blobs.read_bytes(uri))
        except storage.ObjectNotFound:
            output = {}  # expired by the results bucket's lifecycle: the summary is still in the document
        view["segments"] = [_segment(s) for s in output.get("segments") or []]
        view["exclusive_segments"] = [_segment(s) for s in output.get("exclusive_segments") or []]
    return view


def _segment(item: dict[str, Any]) -> dict[str, Any]:
    return {"speaker": str(item["speaker"]), "start": float(item["start"]), "end": float(item["end"])}


def list_jobs(
    principal: Principal, status: str | None, limit: int, page_token: str | None, deps: ApiDeps
) -> dict[str, Any]:
    if page_token is not None and not uploads.JOB_ID_PATTERN.match(page_token):
        raise ApiError(400, "invalid_page_token", "page_token is not one this API handed out.")
    try:
        docs, more = deps.store.jobs(principal.producer, status, limit, page_token)
    except InvalidPageToken as exc:
        raise ApiError(400, "invalid_page_token", "page_token is not one this API handed out.") from exc
    jobs = [views.job_view(doc) for doc in docs]
    return {"jobs": jobs, "next_page_token": jobs[-1]["job_id"] if more and jobs else None}


def signed_result(job_id: str, fmt: str, principal: Principal, deps: ApiDeps) -> str:
    doc, _ = owned(job_id, principal, deps)
    status = (doc or {}).get("status", views.PENDING)
    if status == "DELETED":
        raise ApiError(410, "job_deleted", f"Job {job_id} was deleted with its results.")
    uri = views.result_uri(doc, fmt) if doc else None
    if status != "COMPLETED" or uri is None:
        raise ApiError(409, "result_not_ready", f"Job {job_id} is {status}: results exist once it is COMPLETED.")
    stem = uploads.safe_file_name(jobdoc.input_of(doc).get("filename") or job_id)
    stem = stem.rsplit(".", 1)[0]
    return deps.objects.sign_get(uri, deps.config.result_url_ttl_s, download_name=f"{stem}.{fmt}")


def signed_audio(job_id: str, principal: Principal, deps: ApiDeps) -> str:
    doc, _ = owned(job_id, principal, deps)
    if (doc or {}).get("status") == "DELETED":
        raise ApiError(410, "job_deleted", f"Job {job_id} was deleted with its audio.")
    uri = jobdoc.input_of(doc).get("uri")
    if not uri:
        raise ApiError(409, "audio_not_ready", f"Job {job_id} has no uploaded audio yet.")
    return deps.objects.sign_get(str(uri), deps.config.result_url_ttl_s)


def delete_job(job_id: str, principal: Principal, deps: ApiDeps) -> Accepted:
    """Delete the job's input, work files and results, then announce it (job.deleted: the projector marks it)."""
    doc, _ = owned(job_id, principal, deps)
    input_uri = jobdoc.input_of(doc).get("uri")
    paths = JobPaths(job_id)
    prefixes = [
        # an API upload's own folder, or the producer's object when it was submitted by URI
        storage.uri(deps.config.uploads_bucket, paths.upload_folder),
        storage.uri(deps.config.work_bucket, paths.work_folder),
        storage.uri(deps.config.results_bucket, paths.results_folder),
    ]
    deleted = [uri for prefix in prefixes for uri in deps.objects.delete_prefix(prefix)]
    # An object submitted by URI is deleted alone: as a prefix it would take its neighbours with it.
    if input_uri and not str(input_uri).startswith(prefixes[0]) and deps.objects.delete(str(input_uri)):
        deleted.insert(0, str(input_uri))
    event = JobDeleted.new(
        models.JobDeletedV1Data(job_id=job_id, deleted_by=principal.producer, deleted_objects=deleted or None),
        source=deps.config.source,
        # One deletion per job: a repeated DELETE publishes the same event, which the projector drops.
        event_id=str(uuid.uuid5(_ID_NAMESPACE, f"{job_id}|deleted")),
    )
    deps.publisher.publish([event])
    return Accepted(job_id=job_id, status="DELETED")
