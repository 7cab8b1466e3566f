"""api.handlers over in-memory doubles of the store, the objects, the blobs and the publisher."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from api import handlers
from api.auth import Principal
from api.handlers import ApiConfig, ApiDeps
from api.schemas import JobRequest, UploadRequest
from speakerline import uploads
from speakerline.events import AudioUploaded, JobDeleted
from tests.api.refusals import refused
from tests.fakes import MemoryApiStore, MemoryBlobStore, MemoryObjects, RecordingPublisher

NEWS = Principal("newsroom", "0123456789ab")
OTHER = Principal("other", "ba9876543210")
UPLOADS = "up-bucket"
INPUT = f"gs://{UPLOADS}/interviews/standup.mp3"


class World:
    def __init__(self) -> None:
        self.store = MemoryApiStore()
        self.objects = MemoryObjects()
        self.blobs = MemoryBlobStore()
        self.publisher = RecordingPublisher()
        config = ApiConfig(
            source="//speakerline/api",
            uploads_bucket=UPLOADS,
            work_bucket="work-bucket",
            results_bucket="results-bucket",
            max_upload_bytes=10 * 1024**2,
            upload_url_ttl_s=900,
            result_url_ttl_s=300,
        )
        self.deps = ApiDeps(config, self.store, self.objects, self.blobs, self.publisher)


@pytest.fixture
def w() -> World:
    return World()


def _upload(**fields: Any) -> UploadRequest:
    return UploadRequest.model_validate(
        {"file_name": "standup.mp3", "content_type": "audio/mpeg", "size": 1000, **fields}
    )


# --- POST /v1/uploads -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "image/png", "application/json", "application/pdf"])
def test_create_upload_refuses_what_cannot_be_audio(w: World, content_type: str) -> None:
    refused(lambda: handlers.create_upload(_upload(content_type=content_type), NEWS, w.deps), 422, "unsupported_format")
    assert not w.objects.signed_puts and not w.store.claims


@pytest.mark.parametrize(
    "content_type", ["audio/mpeg", "AUDIO/WAV", "video/mp4", "application/ogg", "application/octet-stream"]
)
def test_create_upload_accepts_audio_and_video(w: World, content_type: str) -> None:
    assert handlers.create_upload(_upload(content_type=content_type), NEWS, w.deps).job_id


def test_create_upload_refuses_a_file_over_the_limit(w: World) -> None:
    limit = w.deps.config.max_upload_bytes
    handlers.create_upload(_upload(size=limit), NEWS, w.deps)  # exactly the limit is fine
    error = refused(lambda: handlers.create_upload(_upload(size=limit + 1), NEWS, w.deps), 422, "file_too_large")
    assert "10.0 MiB" in error.detail
    assert len(w.objects.signed_puts) == 1


def test_create_upload_signs_the_metadata_and_claims_the_job(w: World) -> None:
    body = _upload(
        file_name="C:\\rec\\Réunion du lundi.mp3",
        min_speakers=2,
        max_speakers=4,
        webhook_url="https://hooks.example/x",
        correlation_id="c-1",
    )

    upload = handlers.create_upload(body, NEWS, w.deps)

    assert upload.job_id.startswith("job_")
    assert upload.gs_uri == f"gs://{UPLOADS}/api/{upload.job_id}/Reunion_du_lundi.mp3"
    assert upload.expires_in == 900 and upload.upload_method == "PUT"
    [(uri, signed_headers, ttl)] = w.objects.signed_puts
    assert (uri, ttl) == (upload.gs_uri, 900)
    assert signed_headers == upload.upload_headers  # the producer sends exactly what was signed
    assert signed_headers == {
        "content-type": "audio/mpeg",
        "x-goog-if-generation-match": "0",
        "x-goog-content-length-range": "0,1000",
        "x-goog-meta-job_id": upload.job_id,
        "x-goog-meta-producer": "newsroom",
        "x-goog-meta-submitted_by": "api",
        "x-goog-meta-filename": "Reunion_du_lundi.mp3",
        "x-goog-meta-min_speakers": "2",
        "x-goog-meta-max_speakers": "4",
        "x-goog-meta-webhook_url": "https://hooks.example/x",
        "x-goog-meta-correlation_id": "c-1",
    }
    assert upload.upload_url == "https://signed.example/put/" + upload.gs_uri.removeprefix("gs://")
    claim = w.store.claims[upload.job_id]
    assert (claim["producer"], claim["file_name"]) == ("newsroom", "Reunion_du_lundi.mp3")
    assert not w.publisher.events  # the upload's finalize notification starts the job, not the API


@pytest.mark.parametrize("options", [{"num_speakers": 3}, {"min_speakers": 2, "max_speakers": 4}])
def test_every_signed_upload_header_is_allowed_by_the_uploads_buckets_cors(w: World, options: dict[str, int]) -> None:
    # A browser must send each signed header; the bucket's CORS allowlist (UPLOAD_HEADERS) has to let it through.
    body = _upload(webhook_url="https://hooks.example/x", correlation_id="c-1", **options)
    upload = handlers.create_upload(body, NEWS, w.deps)
    assert set(upload.upload_headers) - {"content-type"} <= set(uploads.UPLOAD_HEADERS)


def test_create_upload_gives_each_upload_its_own_job(w: World) -> None:
    a = handlers.create_upload(_upload(), NEWS, w.deps)
    b = handlers.create_upload(_upload(), NEWS, w.deps)
    assert a.job_id != b.job_id and a.gs_uri != b.gs_uri


def test_create_upload_signs_the_declared_size(w: World) -> None:
    upload = handlers.create_upload(_upload(size=1234), NEWS, w.deps)
    headers = {k.lower(): v for k, v in upload.upload_headers.items()}
    assert headers.get("content-length") == "1234" or headers.get("x-goog-content-length-range") == "0,1234"


# --- POST /v1/jobs --------------------------------------------------------------------------------------------


def _job(**fields: Any) -> JobRequest:
    return JobRequest.model_validate({"input_uri": INPUT, **fields})


def test_submit_job_publishes_audio_uploaded(w: World) -> None:
    w.objects.add(INPUT, size=2841600, content_type="audio/mpeg")

    accepted = handlers.submit_job(_job(num_speakers=3, correlation_id="c-9"), None, NEWS, w.deps)

    assert accepted.status == "PENDING"
    [event] = w.publisher.events
    assert event["type"] == AudioUploaded.TYPE
    data = event.data
    assert data["job_id"] == accepted.job_id
    request = data["request"]
    assert request["input"] == {
        "uri": INPUT,
        "generation": "1700000000000000",
        "size_bytes": 2841600,
        "content_type": "audio/mpeg",
        "filename": "standup.mp3",
    }
    assert request["options"] == {"num_speakers": 3}
    assert (request["producer"], request["submitted_by"], request["correlation_id"]) == ("newsroom", "api", "c-9")
    assert w.store.claims[accepted.job_id]["producer"] == "newsroom"


def test_same_idempotency_key_and_body_gives_one_job_published_once(w: World) -> None:
    w.objects.add(INPUT)

    first = handlers.submit_job(_job(min_speakers=2), "key-1", NEWS, w.deps)
    again = handlers.submit_job(_job(min_speakers=2), "key-1", NEWS, w.deps)

    assert first.job_id == again.job_id
    assert w.publisher.types() == [AudioUploaded.TYPE]
    [record] = w.store.idempotency.values()
    assert record["published"] is True and record["job_id"] == first.job_id


def test_an_unpublished_reservation_is_published_again_with_the_same_event_id(w: World) -> None:
    w.objects.add(INPUT)
    handlers.submit_job(_job(), "key-1", NEWS, w.deps)
    [scope] = w.store.idempotency
    w.store.idempotency[scope]["published"] = False  # as if the first call crashed after reserving

    handlers.submit_job(_job(), "key-1", NEWS, w.deps)

    ids = [e["id"] for e in w.publisher.events]
    assert len(ids) == 2 and ids[0] == ids[1]  # the consumers drop the duplicate


def test_same_idempotency_key_other_body_is_409(w: World) -> None:
    w.objects.add(INPUT)
    handlers.submit_job(_job(min_speakers=2), "key-1", NEWS, w.deps)

    refused(lambda: handlers.submit_job(_job(min_speakers=3), "key-1", NEWS, w.deps), 409, "idempotency_key_reused")
    assert len(w.publisher.events) == 1


def test_idempotency_keys_are_per_producer(w: World) -> None:
    w.objects.add(INPUT)
    a = handlers.submit_job(_job(), "key-1", NEWS, w.deps)
    b = handlers.submit_job(_job(), "key-1", OTHER, w.deps)
    assert a.job_id != b.job_id
    assert len(w.publisher.events) == 2


def test_without_idempotency_key_each_call_is_a_new_job(w: World) -> None:
    w.objects.add(INPUT)
    a = handlers.submit_job(_job(), None, NEWS, w.deps)
    b = handlers.submit_job(_job(), None, NEWS, w.deps)
    assert a.job_id != b.job_id and len(w.publisher.events) == 2


def test_input_outside_the_uploads_bucket_is_refused(w: World) -> None:
    w.objects.add("gs://results-bucket/results/job_x/output.json")
    refused(
        lambda: handlers.submit_job(
            _job(input_uri="gs://results-bucket/results/job_x/output.json"), None, NEWS, w.deps
        ),
        422,
        "input_not_allowed",
    )
    assert not w.publisher.events


def test_missing_input_is_input_not_found(w: World) -> None:
    refused(lambda: handlers.submit_job(_job(), None, NEWS, w.deps), 422, "input_not_found")
    assert not w.publisher.events and not w.store.claims


def test_another_producers_upload_is_input_not_found(w: World) -> None:
    w.objects.add(INPUT, producer="other")
    refused(lambda: handlers.submit_job(_job(), "k", NEWS, w.deps), 422, "input_not_found")
    assert not w.publisher.events and not w.store.claims
    assert handlers.submit_job(_job(), "k", OTHER, w.deps).job_id  # its own producer may


# --- GET /v1/jobs/{id} ----------------------------------------------------------------------------------------

JOB = "job_0123456789abcdef01234567"
RESULT = f"gs://results-bucket/results/{JOB}/output.json"


def _doc(status: str = "COMPLETED", producer: str = "newsroom", **extra: Any) -> dict[str, Any]:
    return {
        "job_id": JOB,
        "status": status,
        "created_at": datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
        "updated_at": datetime(2026, 11, 20, 9, 31, tzinfo=UTC),
        "request": {
            "input": {"uri": f"gs://{UPLOADS}/api/{JOB}/standup.mp3", "filename": "standup.mp3", "size_bytes": 9},
            "producer": producer,
        },
        "event_count": 5,
        **extra,
    }


def test_get_job_of_another_producer_is_404(w: World) -> None:
    w.store.docs[JOB] = _doc()
    refused(lambda: handlers.get_job(JOB, OTHER, w.deps), 404, "not_found")


def test_get_job_claimed_by_another_producer_is_404(w: World) -> None:
    w.store.claim(JOB, "newsroom", "a.wav")
    refused(lambda: handlers.get_job(JOB, OTHER, w.deps), 404, "not_found")
    assert handlers.get_job(JOB, NEWS, w.deps)["status"] == "PENDING"


@pytest.mark.parametrize("job_id", ["job_unknown00000", "nope", "../../etc", "JOB_UPPERCASE000"])
def test_get_unknown_or_malformed_job_is_404(w: World, job_id: str) -> None:
    refused(lambda: handlers.get_job(job_id, NEWS, w.deps), 404, "not_found")


def test_the_document_producer_wins_over_a_claim(w: World) -> None:
    w.store.docs[JOB] = _doc(producer="newsroom")
    w.store.claim(JOB, "other", None)
    assert handlers.get_job(JOB, NEWS, w.deps)["job_id"] == JOB
    refused(lambda: handlers.get_job(JOB, OTHER, w.deps), 404, "not_found")


def test_completed_job_reads_its_segments_from_output_json(w: World) -> None:
    w.store.docs[JOB] = _doc(result={"output_uri": RESULT, "summary": {"num_speakers": 2}})
    output = {
        "segments": [{"speaker": "SPEAKER_00", "start": 0.5, "end": 4, "confidence": 0.9}],
        "exclusive_segments": [{"speaker": "SPEAKER_01", "start": "4.5", "end": 6.25}],
    }
    w.blobs.put(RESULT, json.dumps(output).encode(), "application/json")

    view = handlers.get_job(JOB, NEWS, w.deps)

    assert view["segments"] == [{"speaker": "SPEAKER_00", "start": 0.5, "end": 4.0}]
    assert view["exclusive_segments"] == [{"speaker": "SPEAKER_01", "start": 4.5, "end": 6.25}]
    assert view["result"] == {"summary": {"num_speakers": 2}, "formats": ["json"]}
    assert "segments" not in handlers.get_job(JOB, NEWS, w.deps, segments=False)


def test_completed_job_whose_output_expired_has_no_segments(w: World) -> None:
    w.store.docs[JOB] = _doc(result={"output_uri": RESULT, "summary": {}})
    view = handlers.get_job(JOB, NEWS, w.deps)
    assert view["segments"] == [] and view["exclusive_segments"] == []


def test_unfinished_job_has_no_segments(w: World) -> None:
    w.store.docs[JOB] = _doc(status="DIARIZING")
    w.blobs.put(RESULT, b'{"segments": [{"speaker": "S", "start": 0, "end": 1}]}')
    assert "segments" not in handlers.get_job(JOB, NEWS, w.deps)


# --- result, audio and list -----------------------------------------------------------------------------------


def test_signed_result_of_a_completed_job(w: World) -> None:
    w.store.docs[JOB] = _doc(result={"output_uri": RESULT, "rttm_uri": RESULT.replace(".json", ".rttm")})
    url = handlers.signed_result(JOB, "rttm", NEWS, w.deps)
    assert url.endswith("output.rttm")
    assert w.objects.signed_gets == [(RESULT.replace(".json", ".rttm"), 300, "standup.rttm")]
    refused(lambda: handlers.signed_result(JOB, "vtt", NEWS, w.deps), 409, "result_not_ready")


def test_signed_result_before_completion_is_409_and_after_deletion_410(w: World) -> None:
    w.store.docs[JOB] = _doc(status="DIARIZING")
    refused(lambda: handlers.signed_result(JOB, "json", NEWS, w.deps), 409, "result_not_ready")
    w.store.docs[JOB] = _doc(status="DELETED")
    refused(lambda: handlers.signed_result(JOB, "json", NEWS, w.deps), 410, "job_deleted")
    refused(lambda: handlers.signed_audio(JOB, NEWS, w.deps), 410, "job_deleted")


def test_signed_audio(w: World) -> None:
    w.store.claim(JOB, "newsroom", None)
    refused(lambda: handlers.signed_audio(JOB, NEWS, w.deps), 409, "audio_not_ready")
    w.store.docs[JOB] = _doc(status="RECEIVED")
    handlers.signed_audio(JOB, NEWS, w.deps)
    assert w.objects.signed_gets == [(f"gs://{UPLOADS}/api/{JOB}/standup.mp3", 300, None)]


def test_list_jobs_pages_newest_first(w: World) -> None:
    for i in range(5):
        job_id = f"job_{i:08d}"
        w.store.docs[job_id] = {**_doc(), "job_id": job_id, "created_at": datetime(2026, 1, 1 + i, tzinfo=UTC)}
    w.store.docs["job_foreign0"] = {**_doc(producer="other"), "job_id": "job_foreign0"}

    page = handlers.list_jobs(NEWS, None, 2, None, w.deps)
    assert [j["job_id"] for j in page["jobs"]] == ["job_00000004", "job_00000003"]
    assert page["next_page_token"] == "job_00000003"
    last = handlers.list_jobs(NEWS, None, 3, page["next_page_token"], w.deps)
    assert [j["job_id"] for j in last["jobs"]] == ["job_00000002", "job_00000001", "job_00000000"]
    assert last["next_page_token"] is None
    refused(lambda: handlers.list_jobs(NEWS, None, 2, "not a token!", w.deps), 400, "invalid_page_token")


# --- DELETE /v1/jobs/{id} -------------------------------------------------------------------------------------


def test_delete_job_deletes_the_prefixes_and_publishes_job_deleted(w: World) -> None:
    w.store.docs[JOB] = _doc()
    kept = [f"gs://{UPLOADS}/api/job_ffffffffffffffffffffffff/x.wav", "gs://results-bucket/results/job_other/o.json"]
    doomed = [
        f"gs://{UPLOADS}/api/{JOB}/standup.mp3",
        f"gs://work-bucket/jobs/{JOB}/audio.wav",
        f"gs://results-bucket/results/{JOB}/output.json",
        f"gs://results-bucket/results/{JOB}/output.rttm",
    ]
    for uri in kept + doomed:
        w.objects.add(uri)

    accepted = handlers.delete_job(JOB, NEWS, w.deps)

    assert (accepted.job_id, accepted.status) == (JOB, "DELETED")
    assert sorted(w.objects.objects) == sorted(kept)
    assert w.objects.deleted_prefixes == [
        f"gs://{UPLOADS}/api/{JOB}/",
        f"gs://work-bucket/jobs/{JOB}/",
        f"gs://results-bucket/results/{JOB}/",
    ]
    [event] = w.publisher.events
    assert event["type"] == JobDeleted.TYPE
    assert event.data["job_id"] == JOB and event.data["deleted_by"] == "newsroom"
    assert sorted(event.data["deleted_objects"]) == sorted(doomed)


def test_a_repeated_delete_publishes_the_same_event(w: World) -> None:
    w.store.docs[JOB] = _doc()
    handlers.delete_job(JOB, NEWS, w.deps)
    w.store.docs[JOB] = _doc(status="DELETED")
    handlers.delete_job(JOB, NEWS, w.deps)

    first, second = w.publisher.events
    assert first["id"] == second["id"]
    assert "deleted_objects" not in second.data or not second.data["deleted_objects"]


def test_delete_of_a_submitted_object_deletes_it(w: World) -> None:
    w.store.docs[JOB] = _doc(request={"input": {"uri": INPUT}, "producer": "newsroom"})
    w.objects.add(INPUT)
    handlers.delete_job(JOB, NEWS, w.deps)
    assert INPUT not in w.objects.objects
    assert INPUT not in w.objects.deleted_prefixes, "the input is one object, never a prefix"


def test_delete_of_another_producers_job_is_404(w: World) -> None:
    w.store.docs[JOB] = _doc()
    w.objects.add(f"gs://{UPLOADS}/api/{JOB}/standup.mp3")
    refused(lambda: handlers.delete_job(JOB, OTHER, w.deps), 404, "not_found")
    assert w.objects.objects and not w.publisher.events


def test_delete_of_a_submitted_object_deletes_only_that_object(w: World) -> None:
    w.store.docs[JOB] = _doc(request={"input": {"uri": INPUT}, "producer": "newsroom"})
    neighbours = [INPUT + ".bak", INPUT + "-v2.mp3", INPUT + "/x"]
    for uri in [INPUT, *neighbours]:
        w.objects.add(uri)
    handlers.delete_job(JOB, NEWS, w.deps)
    assert sorted(w.objects.objects) == sorted(neighbours)
